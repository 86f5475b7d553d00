//! The real binary stops cleanly on SIGTERM and on SIGINT: it finishes, exits 0, and a restart on
//! the same database finds everything in place.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A free port on loopback (bound and released; the race with other tests is negligible).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn serve(data: &std::path::Path, port: u16) -> Child {
    Command::new(env!("CARGO_BIN_EXE_itaku"))
        .arg("serve")
        .env("ITAKU_PORT", port.to_string())
        .env(
            "ITAKU_DATABASE_URL",
            format!("sqlite://{}?mode=rwc", data.join("itaku.db").display()),
        )
        .env(
            "ITAKU_WORKFLOWS_DIR",
            concat!(env!("CARGO_MANIFEST_DIR"), "/workflows"),
        )
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

async fn wait_healthy(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let url = format!("http://127.0.0.1:{port}/healthz");
    while Instant::now() < deadline {
        if let Ok(r) = reqwest::get(&url).await {
            if r.status() == 200 {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the server did not become healthy on port {port}");
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args([format!("-{name}"), child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_exit(mut child: Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            panic!("the server did not stop within 20 s of the signal");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn stops_cleanly_on(sig: &str) {
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let server = serve(data.path(), port);
    wait_healthy(port).await;
    signal(&server, sig);
    let status = wait_exit(server);
    assert!(status.success(), "exit status after {sig}: {status}");
    // The database it left is whole: a new server starts on it and is ready.
    let port = free_port();
    let again = serve(data.path(), port);
    wait_healthy(port).await;
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/readyz"))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    signal(&again, "TERM");
    assert!(wait_exit(again).success());
}

#[tokio::test]
async fn the_server_stops_cleanly_on_sigterm() {
    stops_cleanly_on("TERM").await;
}

#[tokio::test]
async fn the_server_stops_cleanly_on_sigint() {
    stops_cleanly_on("INT").await;
}
