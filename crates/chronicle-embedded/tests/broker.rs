//! Starts the embedded broker and talks raw MQTT 3.1.1 to it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use chronicle_embedded::{BrokerError, EmbeddedBroker, EmbeddedBrokerConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port on 127.0.0.1")
}

fn config(listen: SocketAddr) -> EmbeddedBrokerConfig {
    EmbeddedBrokerConfig {
        listen,
        max_payload_bytes: 64 * 1024,
        max_inflight: 100,
        max_connections: 100,
    }
}

/// Accepts exactly username "good" with password "secret".
async fn authenticate(_client_id: String, username: String, password: String) -> bool {
    username == "good" && password == "secret"
}

/// Appends an MQTT UTF-8 string (u16 big-endian length + bytes).
fn put_str(buf: &mut Vec<u8>, s: &str) {
    let len = u16::try_from(s.len()).expect("short string");
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(s.as_bytes());
}

/// An MQTT 3.1.1 CONNECT packet; credentials are sent when `login` is Some.
fn connect_packet(client_id: &str, login: Option<(&str, &str)>) -> Vec<u8> {
    let mut body = Vec::new();
    put_str(&mut body, "MQTT");
    body.push(4); // protocol level 4 = MQTT 3.1.1
    let mut flags = 0b0000_0010; // clean session
    if login.is_some() {
        flags |= 0b1100_0000; // username + password present
    }
    body.push(flags);
    body.extend_from_slice(&60u16.to_be_bytes()); // keep alive; rumqttd rejects 0
    put_str(&mut body, client_id);
    if let Some((user, pass)) = login {
        put_str(&mut body, user);
        put_str(&mut body, pass);
    }
    let mut packet = vec![
        0x10,
        u8::try_from(body.len()).expect("fits one length byte"),
    ];
    packet.extend_from_slice(&body);
    packet
}

/// Sends CONNECT and returns the CONNACK return code, or None if the broker closed the
/// connection without one.
async fn connack_code(
    addr: SocketAddr,
    client_id: &str,
    login: Option<(&str, &str)>,
) -> Option<u8> {
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .expect("connect to broker");
    stream
        .write_all(&connect_packet(client_id, login))
        .await
        .expect("send CONNECT");
    let mut ack = [0u8; 4];
    match tokio::time::timeout(Duration::from_secs(10), stream.read_exact(&mut ack)).await {
        Ok(Ok(_)) => {
            assert_eq!(ack[0], 0x20, "expected a CONNACK, got {ack:?}");
            assert_eq!(ack[1], 2);
            Some(ack[3])
        }
        // EOF or reset: rejected without a CONNACK.
        Ok(Err(_)) => None,
        Err(_) => panic!("broker neither answered nor closed the connection"),
    }
}

#[tokio::test]
async fn accepts_good_and_rejects_bad_credentials() {
    let addr = free_addr();
    let broker = EmbeddedBroker::start(config(addr), authenticate).expect("broker starts");
    assert_eq!(broker.listen_addr(), addr);
    assert!(broker.is_running());

    assert_eq!(
        connack_code(addr, "dev-1", Some(("good", "secret"))).await,
        Some(0)
    );

    let bad = connack_code(addr, "dev-2", Some(("good", "wrong"))).await;
    assert!(
        bad.is_none_or(|code| code != 0),
        "bad password accepted: {bad:?}"
    );
    let bad = connack_code(addr, "dev-3", Some(("evil", "secret"))).await;
    assert!(
        bad.is_none_or(|code| code != 0),
        "bad user accepted: {bad:?}"
    );
    let bad = connack_code(addr, "dev-4", None).await;
    assert!(
        bad.is_none_or(|code| code != 0),
        "missing credentials accepted: {bad:?}"
    );
}

/// Without a Tokio runtime the callback runs on rumqttd's own runtime.
#[test]
fn works_outside_a_tokio_runtime() {
    let addr = free_addr();
    let _broker = EmbeddedBroker::start(config(addr), authenticate).expect("broker starts");
    let mut stream = std::net::TcpStream::connect(addr).expect("connect to broker");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("set timeout");
    stream
        .write_all(&connect_packet("dev-sync", Some(("good", "secret"))))
        .expect("send CONNECT");
    let mut ack = [0u8; 4];
    stream.read_exact(&mut ack).expect("CONNACK");
    assert_eq!(ack, [0x20, 2, 0, 0]);
}

#[test]
fn reports_address_in_use() {
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().expect("local addr");
    let err = EmbeddedBroker::start(config(addr), authenticate).expect_err("port is taken");
    assert!(matches!(err, BrokerError::AddressInUse { .. }), "{err:?}");
    assert!(err.to_string().contains("--mqtt-listen"), "{err}");
}
