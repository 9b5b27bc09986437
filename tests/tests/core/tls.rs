//! TLS to the server, set by `sslmode` and `sslrootcert` in the URL as with libpq. Run
//! against the throwaway cluster, which offers TLS with a certificate its own CA signed.

use chakra::{Config, ErrorKind, PoolBuilder, Queryable, Session};
use chakra_tests::{throwaway_ca, throwaway_client_cert, throwaway_url};

/// `url` with more query parameters.
fn with(url: &str, params: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{params}")
}

/// Whether the connection `db` runs on is encrypted, as the server sees it.
async fn encrypted(db: &impl Queryable) -> bool {
    db.query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", vec![]).await.unwrap().get(0)
}

#[tokio::test]
async fn each_sslmode_connects_as_libpq_would() {
    let Some(url) = throwaway_url() else { return };
    let ca = throwaway_ca();
    for (params, tls) in [
        ("sslmode=disable".to_owned(), false),
        // The default: TLS when the server offers it.
        (String::new(), true),
        ("sslmode=prefer".to_owned(), true),
        // Encrypted, the certificate not checked: libpq's `require` without a root file.
        ("sslmode=require".to_owned(), true),
        (format!("sslmode=require&sslrootcert={ca}"), true),
        (format!("sslmode=verify-ca&sslrootcert={ca}"), true),
        (format!("sslmode=verify-full&sslrootcert={ca}"), true),
    ] {
        let url = with(&url, &params);
        let pool = PoolBuilder::from_config(Config::from_url(&url)).max_connections(2).build().await.unwrap();
        assert_eq!(encrypted(&pool).await, tls, "{params}");
        let (a, b) = tokio::join!(pool.query_one("SELECT 1", vec![]), pool.query_one("SELECT 2", vec![]));
        assert_eq!((a.unwrap().get::<_, i32>(0), b.unwrap().get::<_, i32>(0)), (1, 2), "{params}");
        // A connection outside the pool (the spec's `chakra.connect(url)`) alike.
        let session = Session::connect(&Config::from_url(&url)).await.unwrap();
        assert_eq!(encrypted(&session).await, tls, "{params}, direct");
    }
}

#[tokio::test]
async fn sslmode_allow_goes_without_tls_unless_the_server_turns_that_down() {
    let Some(url) = throwaway_url() else { return };
    let connect = |url: String| async move {
        PoolBuilder::from_config(Config::from_url(url)).max_connections(1).build().await.unwrap()
    };
    // postgres may log in either way: `allow` goes without.
    let pool = connect(with(&url, "sslmode=allow")).await;
    assert!(!encrypted(&pool).await, "allow takes the plain connection the server accepts");

    // The cluster turns role chakra_tls_only away without TLS ...
    let tls_only = url.replacen("postgres@", "chakra_tls_only@", 1);
    let pool = connect(with(&tls_only, "sslmode=disable")).await;
    let err = pool.query_one("SELECT 1", vec![]).await.expect_err("turned away without TLS");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("no encryption"), "the server's reason is kept: {err}");

    // ... so `allow` asks again with TLS, in a pool and on a direct connection alike.
    let allow = with(&tls_only, "sslmode=allow");
    let pool = connect(allow.clone()).await;
    let row = pool.query_one("SELECT current_user::text", vec![]).await.unwrap();
    assert_eq!(row.get::<_, String>(0), "chakra_tls_only");
    assert!(encrypted(&pool).await);
    let session = Session::connect(&Config::from_url(&allow)).await.unwrap();
    assert!(encrypted(&session).await, "direct");

    // The TLS attempt checks the certificate as `prefer` would: against sslrootcert when
    // given, so a root that did not sign it (the client's own certificate) fails the retry.
    let wrong_ca = with(&allow, &format!("sslrootcert={}", throwaway_client_cert().0));
    let pool = connect(wrong_ca).await;
    let err = pool.query_one("SELECT 1", vec![]).await.expect_err("the retry's certificate check fails");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
}

#[tokio::test]
async fn verifying_modes_refuse_a_certificate_no_trusted_ca_signed() {
    let Some(url) = throwaway_url() else { return };
    // Without sslrootcert the roots are Mozilla's, with sslrootcert=system the operating
    // system's, and the cluster's CA is among neither.
    for mode in ["sslmode=verify-ca", "sslmode=verify-full", "sslrootcert=system"] {
        let pool = PoolBuilder::from_config(Config::from_url(with(&url, mode))).build().await;
        let err = pool.unwrap().query_one("SELECT 1", vec![]).await.expect_err(mode);
        assert_eq!(err.kind(), ErrorKind::Connection, "{mode}: {err}");
        assert!(err.to_string().contains("sslrootcert"), "the message says what to set: {err}");
    }
}

#[tokio::test]
async fn verify_full_checks_the_host_name_and_verify_ca_does_not() {
    let Some(url) = throwaway_url() else { return };
    let ca = throwaway_ca();
    // The same server, reached as a name its certificate was not issued for.
    let port = url.rsplit_once(':').and_then(|(_, rest)| rest.split('/').next()).unwrap();
    let elsewhere = format!("postgresql://postgres@db.invalid:{port}/postgres?hostaddr=127.0.0.1&sslrootcert={ca}");

    let pool = PoolBuilder::from_config(Config::from_url(with(&elsewhere, "sslmode=verify-full"))).build().await;
    let err = pool
        .unwrap()
        .query_one("SELECT 1", vec![])
        .await
        .expect_err("a certificate for localhost and 127.0.0.1 is not db.invalid's");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("not valid for name"), "{err}");

    let pool = PoolBuilder::from_config(Config::from_url(with(&elsewhere, "sslmode=verify-ca"))).build().await.unwrap();
    assert!(encrypted(&pool).await);
}

#[tokio::test]
async fn a_client_certificate_logs_in_where_the_server_demands_one() {
    let Some(url) = throwaway_url() else { return };
    let (ca, (cert, key)) = (throwaway_ca(), throwaway_client_cert());
    // The cluster lets role chakra_cert in over TLS only with the certificate its CA signed.
    let as_cert_user = url.replacen("postgres@", "chakra_cert@", 1);
    let verified = with(&as_cert_user, &format!("sslmode=verify-full&sslrootcert={ca}"));

    let pool = PoolBuilder::from_config(Config::from_url(with(&verified, &format!("sslcert={cert}&sslkey={key}"))))
        .build()
        .await
        .unwrap();
    let row = pool
        .query_one("SELECT current_user::text, client_dn FROM pg_stat_ssl WHERE pid = pg_backend_pid()", vec![])
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "chakra_cert");
    assert_eq!(row.get::<_, String>(1), "/CN=chakra_cert");

    let pool = PoolBuilder::from_config(Config::from_url(&verified)).build().await.unwrap();
    let err = pool.query_one("SELECT 1", vec![]).await.expect_err("no client certificate, no login");
    assert_eq!(err.kind(), ErrorKind::Connection, "{err}");
    assert!(err.to_string().contains("client certificate"), "{err}");
}
