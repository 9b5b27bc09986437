-- GET /users/<random id in 1..BENCH_ROWS>, a different random sequence per wrk thread.
local rows = tonumber(os.getenv("BENCH_ROWS") or "100000")
local next_thread = 0

function setup(thread)
  next_thread = next_thread + 1
  thread:set("thread_id", next_thread)
end

function init(args)
  math.randomseed(os.time() * 7919 + (thread_id or 0) * 104729)
end

function request()
  return wrk.format("GET", "/users/" .. math.random(1, rows))
end
