//! `enclave serve` with no DATABASE_URL: it runs its own PostgreSQL under --data-dir, stops it
//! with itself, and finds its data again on the next start.

use reqwest::{Method, StatusCode};

use enclave_tests::bootstrap::{ADMIN_PASSWORD, Database, create_platform_admin};
use enclave_tests::server::temp_data_dir;
use enclave_tests::{Api, EnclaveServer};

use crate::support::{BIN, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_postgres_keeps_tenants_across_restarts() {
    let dir = temp_data_dir().unwrap();
    let email = "root@restart.example.com";

    // A fresh install: the operator creates the first platform admin (this initialises the
    // embedded cluster under the data directory), then starts the server.
    let data = dir.path().to_owned();
    tokio::task::spawn_blocking(move || {
        create_platform_admin(
            BIN.as_ref(),
            Database::DataDir(&data),
            email,
            ADMIN_PASSWORD,
        )
    })
    .await
    .unwrap()
    .unwrap();
    assert!(
        dir.path().join("postgres").is_dir(),
        "no embedded cluster under {}",
        dir.path().display()
    );
    let mut first = EnclaveServer::start(options().data_dir(dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let api = Api::new(first.base_url()).unwrap();
    let admin = api
        .login(email, ADMIN_PASSWORD, None)
        .await
        .unwrap()
        .access_token;
    let tenant_id = api
        .create_tenant(&admin, "persisted", "Persisted Ltd")
        .await
        .unwrap();
    let status = first.stop().await.unwrap();
    assert!(
        status.success(),
        "first run exit: {status}\n{}",
        first.logs()
    );
    // The server stopped its cluster with itself.
    let pid_file = dir.path().join("postgres/data/postmaster.pid");
    assert!(
        !pid_file.exists(),
        "the embedded cluster is still running after the server stopped:\n{}",
        first.logs()
    );
    drop(first);

    // Second start on the same directory: same users, same tenant.
    let mut second = EnclaveServer::start(options().data_dir(dir.path()))
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    let api = Api::new(second.base_url()).unwrap();
    let admin = api
        .login(email, ADMIN_PASSWORD, None)
        .await
        .unwrap()
        .access_token;
    let r = api
        .call(
            Method::GET,
            &format!("/v1/tenants/{tenant_id}"),
            Some(&admin),
            None,
        )
        .await
        .unwrap();
    let tenant = r.expect(StatusCode::OK).unwrap();
    assert_eq!(tenant["slug"], "persisted", "{tenant}");
    assert_eq!(tenant["name"], "Persisted Ltd", "{tenant}");
    let status = second.stop().await.unwrap();
    assert!(
        status.success(),
        "second run exit: {status}\n{}",
        second.logs()
    );
}
