//! What the `zvv` command tests share: the binary with a clean environment, and a `zvv up`
//! child process that is stopped when dropped.
#![allow(dead_code)]

use std::{
    fs,
    io::Read,
    net::{SocketAddr, TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

pub const BIN: &str = env!("CARGO_BIN_EXE_zvv");

/// `zvv` with an environment that cannot redirect it elsewhere.
pub fn zvv() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "DATABASE_URL",
        "ZVV_DATA_DIR",
        "ZVV_TOKEN",
        "ZVV_INTAKE_ADDR",
        "ZVV_INTAKE_LISTEN",
        "ZVV_SIGNALLING_ADDR",
        "ZVV_SIGNALLING_LISTEN",
        "ZVV_NOTIFICATIONS_ADDR",
        "ZVV_NOTIFICATIONS_LISTEN",
        "ZVV_REINTEGRATION_ADDR",
        "ZVV_REINTEGRATION_LISTEN",
        "ZVV_DEADLINE_MONITOR_SECONDS",
        "ZVV_LOG_FORMAT",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `zvv token --org … --org-type … --role …` plus `extra` flags for the data folder `data`;
/// returns the token (the last line of standard output).
pub fn mint(data: &Path, org: &str, org_type: &str, role: &str, extra: &[&str]) -> String {
    let out = zvv()
        .args([
            "token",
            "--org",
            org,
            "--org-type",
            org_type,
            "--role",
            role,
        ])
        .args(extra)
        .arg("--data-dir")
        .arg(data)
        .output()
        .expect("zvv token runs");
    assert!(out.status.success(), "token: {}", text(&out.stderr));
    text(&out.stdout)
        .lines()
        .last()
        .expect("a token")
        .trim()
        .to_owned()
}

/// Borrowed arguments for a call made of owned ones.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// `n` valid (11-proof) BSNs other than 123456782, the same ones on every run.
pub fn bsns(n: usize) -> Vec<String> {
    (100_000_000u32..)
        .map(|candidate| candidate.to_string())
        .filter(|bsn| {
            let sum: i32 = bsn
                .bytes()
                .zip([9, 8, 7, 6, 5, 4, 3, 2, -1])
                .map(|(b, weight)| i32::from(b - b'0') * weight)
                .sum();
            sum != 0 && sum % 11 == 0 && bsn != "123456782"
        })
        .take(n)
        .collect()
}

/// A running `zvv up`; sent SIGTERM (and, if that does not help, SIGKILL) when dropped.
pub struct Up {
    pub child: Child,
    pub log: PathBuf,
}

impl Up {
    /// `zvv up` with intake and signalling on the given addresses, notifications and
    /// reintegration on any free port.
    pub fn start(data: &Path, intake: SocketAddr, signalling: SocketAddr, log: &Path) -> Self {
        let any: SocketAddr = "127.0.0.1:0".parse().expect("address");
        Self::start_on(data, [intake, signalling, any, any], &[], log)
    }

    /// `zvv up` with intake, signalling, reintegration and notifications on `addrs` (in that
    /// order; port 0: any free port) and `extra` flags.
    pub fn start_on(data: &Path, addrs: [SocketAddr; 4], extra: &[&str], log: &Path) -> Self {
        let log_file = fs::File::create(log).expect("log file");
        let [intake, signalling, reintegration, notifications] = addrs;
        let child = zvv()
            .arg("up")
            .arg("--data-dir")
            .arg(data)
            .arg("--intake-listen")
            .arg(intake.to_string())
            .arg("--signalling-listen")
            .arg(signalling.to_string())
            .arg("--reintegration-listen")
            .arg(reintegration.to_string())
            .arg("--notifications-listen")
            .arg(notifications.to_string())
            .args(extra)
            .stdout(log_file.try_clone().expect("log file"))
            .stderr(log_file)
            .spawn()
            .expect("zvv up starts");
        Up {
            child,
            log: log.to_path_buf(),
        }
    }

    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = fs::File::open(&self.log) {
            let _ = file.read_to_string(&mut text);
        }
        text
    }

    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect_timeout(&addr, Duration::from_millis(500)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("zvv up exited early ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "zvv up did not listen on {addr} in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Waits for `zvv up` to exit on its own (e.g. refusing to start).
    pub fn wait_for_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }

    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        None
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait()
            && self.terminate().is_none()
        {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}
