//! A real S3-compatible server for tests: `moto` (from PyPI) on 127.0.0.1.
//!
//! [`MotoServer::start`] installs moto once into a Python venv under the directory it is
//! given (tests pass `env!("CARGO_TARGET_TMPDIR")`; a file lock makes concurrent test
//! processes wait for one install), starts `moto_server` on a free loopback port, waits
//! until it answers, creates the bucket [`BUCKET`], and kills the server when dropped.
//! Only the install needs the network (PyPI).

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use flow_runtime::objects::ObjectStoreConfig;

/// The moto release the tests run against.
pub const MOTO_VERSION: &str = "5.2.5";

/// The bucket every server starts with.
pub const BUCKET: &str = "flow-test";

/// How long a fresh server may take to answer.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A running moto server; killed when dropped.
pub struct MotoServer {
    child: Child,
    port: u16,
    log: PathBuf,
}

/// A port no one listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    listener.local_addr().expect("the bound address").port()
}

/// The settings of [`BUCKET`] under `prefix` on the server at `endpoint`, as code gives
/// them to flow (tests cannot set the process's environment).
pub fn s3_config(endpoint: &str, prefix: &str) -> ObjectStoreConfig {
    let options = [
        ("aws_endpoint_url", endpoint),
        ("aws_allow_http", "true"),
        ("aws_access_key_id", "test"),
        ("aws_secret_access_key", "test"),
        ("aws_region", "us-east-1"),
    ];
    options.into_iter().fold(
        ObjectStoreConfig::parse(&format!("s3://{BUCKET}/{prefix}")).expect("an s3 URL"),
        |config, (key, value)| config.option(key, value).expect("a known S3 option"),
    )
}

impl MotoServer {
    /// Starts a server on a free port.
    pub fn start(dir: impl AsRef<Path>) -> Self {
        Self::start_on(dir, free_port())
    }

    /// Starts a server on `port`.
    pub fn start_on(dir: impl AsRef<Path>, port: u16) -> Self {
        let dir = dir.as_ref();
        let bin = install(dir);
        let log = dir.join(format!("moto-{port}.log"));
        let log_file = File::create(&log).expect("create the moto log");
        let child = Command::new(&bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone().expect("clone the log handle"))
            .stderr(log_file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let mut server = Self { child, port, log };
        server.wait_until_ready();
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// [`s3_config`] for this server.
    pub fn config(&self, prefix: &str) -> ObjectStoreConfig {
        s3_config(&self.endpoint(), prefix)
    }

    /// The environment a `fixture` process needs to use `s3://BUCKET/prefix` on this server.
    pub fn env(&self, prefix: &str) -> Vec<(&'static str, String)> {
        vec![
            ("FLOW_OBJECT_STORE", format!("s3://{BUCKET}/{prefix}")),
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    /// Every key in [`BUCKET`] that starts with `prefix`, sorted.
    pub fn keys(&self, prefix: &str) -> Vec<String> {
        let target = format!("/{BUCKET}?list-type=2&prefix={}", encode(prefix, false));
        let (status, body) = self.request("GET", &target, b"");
        assert_eq!(status, 200, "listing the bucket failed: {body}");
        let mut keys: Vec<String> = body
            .split("<Key>")
            .skip(1)
            .filter_map(|rest| rest.split("</Key>").next())
            .map(|key| key.replace("&amp;", "&"))
            .collect();
        keys.sort();
        keys
    }

    /// Writes an object straight into [`BUCKET`], as another system would.
    pub fn put(&self, key: &str, body: &[u8]) {
        let (status, answer) =
            self.request("PUT", &format!("/{BUCKET}/{}", encode(key, true)), body);
        assert_eq!(status, 200, "writing {key} failed: {answer}");
    }

    /// One unsigned HTTP/1.1 request (moto does not check signatures); the status and body.
    fn request(&self, method: &str, target: &str, body: &[u8]) -> (u16, String) {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to moto");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("set a read timeout");
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.port,
            body.len()
        );
        stream.write_all(head.as_bytes()).expect("send the request");
        stream.write_all(body).expect("send the body");
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).expect("read the answer");
        let answer = String::from_utf8_lossy(&answer).to_string();
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = answer
            .split_once("\r\n\r\n")
            .map_or(String::new(), |(_, body)| body.to_string());
        (status, body)
    }

    /// Waits until the server answers, then creates the bucket.
    fn wait_until_ready(&mut self) {
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "moto_server exited ({status}) before answering:\n{}",
                    std::fs::read_to_string(&self.log).unwrap_or_default()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let (status, body) = self.request("PUT", &format!("/{BUCKET}"), b"");
                assert_eq!(status, 200, "creating the bucket failed: {body}");
                return;
            }
            assert!(
                started.elapsed() < START_TIMEOUT,
                "moto_server did not answer on port {} within {START_TIMEOUT:?}:\n{}",
                self.port,
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The server's log is kept only to explain a failed test.
        if !std::thread::panicking() {
            let _ = std::fs::remove_file(&self.log);
        }
    }
}

/// Installs moto into `dir/moto-VERSION` once, across concurrent test processes; returns
/// the `moto_server` program.
fn install(dir: &Path) -> PathBuf {
    let venv = dir.join(format!("moto-{MOTO_VERSION}"));
    let bin = venv.join("bin").join("moto_server");
    let done = venv.join(".installed");
    std::fs::create_dir_all(dir).expect("create the test directory");
    let lock = File::create(dir.join("moto-install.lock")).expect("create the install lock");
    lock.lock().expect("take the install lock");
    if !done.exists() {
        // A half-made venv from an interrupted install is started again.
        let _ = std::fs::remove_dir_all(&venv);
        run(Command::new("python3").args(["-m", "venv"]).arg(&venv));
        run(Command::new(venv.join("bin").join("pip")).args([
            "install",
            "--quiet",
            "--disable-pip-version-check",
            &format!("moto[server]=={MOTO_VERSION}"),
        ]));
        std::fs::write(&done, MOTO_VERSION).expect("mark the install done");
    }
    drop(lock);
    bin
}

/// Percent-encodes all but unreserved characters (and `/` in a path).
fn encode(text: &str, path: bool) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            b'/' if path => "/".to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("cannot run {command:?}: {e} (is python3 installed?)"));
    assert!(
        output.status.success(),
        "{command:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
