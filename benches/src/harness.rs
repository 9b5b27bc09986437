//! Running contenders side by side and summarising what they measured.

use std::future::Future;
use std::time::Duration;

use crate::Result;

/// The measurements of one contender on one shape.
#[derive(Debug, Clone, Default)]
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    /// Half the interquartile range relative to the median: a rough "± noise" figure.
    pub fn spread(&self) -> f64 {
        let median = self.median().as_secs_f64();
        match median > 0.0 {
            true => (self.quantile(0.75).as_secs_f64() - self.quantile(0.25).as_secs_f64()) / 2.0 / median,
            false => 0.0,
        }
    }

    /// Linear interpolation between the nearest ranks.
    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.0.clone();
        sorted.sort_unstable();
        match sorted.len() {
            0 => Duration::ZERO,
            n => {
                let rank = q * (n - 1) as f64;
                let (low, high) = (sorted[rank.floor() as usize], sorted[rank.ceil() as usize]);
                low + (high - low).mul_f64(rank.fract())
            }
        }
    }
}

/// Runs `warmup` untimed rounds and then `rounds` timed ones; every round runs each
/// contender once, so all contenders see the same server and machine state.
///
/// The order rotates every round (with two contenders: AB, BA, AB, …), so slow drift —
/// a checkpoint, another client on the shared server, CPU frequency — lands on every
/// contender alike instead of on whichever always runs second.
pub async fn compare<'a, C, F, Fut>(contenders: &'a [C], warmup: usize, rounds: usize, mut run: F) -> Result<Vec<Samples>>
where
    F: FnMut(&'a C) -> Fut,
    Fut: Future<Output = Result<Duration>>,
{
    let mut samples = vec![Samples::default(); contenders.len()];
    for round in 0..warmup + rounds {
        for offset in 0..contenders.len() {
            let i = (round + offset) % contenders.len();
            let measured = run(&contenders[i]).await?;
            if round >= warmup {
                samples[i].0.push(measured);
            }
        }
    }
    Ok(samples)
}

/// `1.5 ms`, `47.2 us`: three significant figures in a unit that suits the value.
pub fn format_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    let (value, unit) = match us {
        us if us >= 1e6 => (us / 1e6, "s"),
        us if us >= 1e3 => (us / 1e3, "ms"),
        us => (us, "us"),
    };
    let decimals = match value {
        v if v >= 100.0 => 0,
        v if v >= 10.0 => 1,
        _ => 2,
    };
    format!("{value:.decimals$} {unit}")
}

/// A plain-text table whose columns fit their widest cell.
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Self {
        Table { header: header.iter().map(|h| h.to_string()).collect(), rows: Vec::new() }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn print(&self) {
        let widths: Vec<usize> = (0..self.header.len())
            .map(|c| self.rows.iter().map(|r| r[c].chars().count()).chain([self.header[c].chars().count()]).max().unwrap_or(0))
            .collect();
        let line = |cells: &[String]| {
            let padded: Vec<String> = cells.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
            println!("| {} |", padded.join(" | "));
        };
        line(&self.header);
        println!("|{}|", widths.iter().map(|w| "-".repeat(w + 2)).collect::<Vec<_>>().join("|"));
        for row in &self.rows {
            line(row);
        }
    }
}
