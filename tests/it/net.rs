//! The shared HTTP client against real local servers: TLS verification with a private CA,
//! redirects not followed, deadlines, body limits, and errors that never carry the URL.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use postcall::net::http::HttpOptions;
use postcall::net::{HttpClient, HttpError};

use crate::servers::http::{HttpServer, Reply};
use crate::servers::tls::TestCa;

fn get(url: &str) -> hyper::Request<Full<Bytes>> {
    hyper::Request::get(url)
        .body(Full::new(Bytes::new()))
        .unwrap()
}

#[tokio::test]
async fn https_verifies_against_the_configured_ca_only() {
    let ca = TestCa::new();
    let mut server = HttpServer::start(Some(&ca), |_| {
        Reply::json(200, &serde_json::json!({"ok": true}))
    })
    .await;
    let trusting = HttpClient::new(ca.client(), &HttpOptions::default());
    let r = trusting
        .send(
            get(&format!("{}/x?sig=SECRET", server.url())),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(server.next_request().await.uri, "/x?sig=SECRET");

    let public_roots = HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions::default(),
    );
    let e = public_roots
        .send(
            get(&format!("{}/x?sig=SECRET", server.url())),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Connect(_)), "{e}");
    assert!(!e.to_string().contains("SECRET"), "{e}");
}

#[tokio::test]
async fn redirects_are_returned_not_followed_and_deadlines_hold() {
    let mut server = HttpServer::start(None, |r| match r.uri.as_str() {
        "/slow" => Reply {
            delay: Some(Duration::from_secs(5)),
            ..Reply::status(200)
        },
        "/big" => Reply::json(200, &serde_json::json!("x".repeat(4096))),
        _ => Reply::status(302).with_header("location", "/elsewhere"),
    })
    .await;
    let client = HttpClient::new(
        postcall::net::tls::client_config(None).unwrap(),
        &HttpOptions {
            max_body_bytes: 1024,
            ..HttpOptions::default()
        },
    );
    let r = client
        .send(
            get(&format!("{}/moved", server.url())),
            Duration::from_secs(5),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 302);
    assert_eq!(server.next_request().await.uri, "/moved");
    let e = client
        .send(
            get(&format!("{}/slow", server.url())),
            Duration::from_millis(100),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Timeout(_)), "{e}");
    let e = client
        .send(
            get(&format!("{}/big", server.url())),
            Duration::from_secs(5),
        )
        .await
        .unwrap_err();
    assert!(matches!(e, HttpError::Body(_)), "{e}");
}
