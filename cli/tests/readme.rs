//! The README's command-line examples ("Command line" and "Test your integration"), run as
//! written: each `sh` command with the documented sample secrets, in a scratch directory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// Every wait ends within this.
const WAIT: Duration = Duration::from_secs(20);

/// The documented sample secrets, under the names the examples read.
const SECRETS: [(&str, &str); 6] = [
    (
        "KITOPAY_SECRET",
        "dev_sec_7HdEmJy9NXTc3S7LMYEf92FAUeThRSTyHFgHBMH78YKz2uQho596jEУvEiERKDm9",
    ),
    ("KAMIOKASH_SECRET", "kk_test_sk_3b9d7f51a2c64e0e9f7d"),
    ("KAMIOKASH_WEBHOOK_SECRET", "whsec_kk_5e2a91c07d3b4f68"),
    (
        "STANDARD_WEBHOOKS_SECRET",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("WH_OLD", "whsec_old"),
    ("WH_NEW", "whsec_kk_5e2a91c07d3b4f68"),
];

/// The README from `## Command line` to just before `## Performance`.
fn sections() -> String {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let start = readme.find("## Command line\n").unwrap();
    let end = readme.find("## Performance\n").unwrap();
    readme[start..end].to_owned()
}

/// The commands of the `sh` blocks: continuation lines joined, comments dropped.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_block = false;
    let mut current = String::new();
    for line in text.lines() {
        if line.starts_with("```") {
            in_block = line == "```sh";
            continue;
        }
        if !in_block {
            continue;
        }
        let line = match line.find(" # ") {
            Some(at) => &line[..at],
            None => line,
        };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(start) => current.push_str(start),
            None => {
                current.push_str(line);
                out.push(std::mem::take(&mut current));
            }
        }
    }
    out
}

/// `bash -c command` in `dir`, with the sample secrets and `countersign` on the PATH.
fn shell(dir: &Path, command: &str) -> Command {
    let bin = Path::new(env!("CARGO_BIN_EXE_countersign"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = Command::new("bash");
    cmd.arg("-c")
        .arg(command)
        .current_dir(dir)
        .env("PATH", path)
        .envs(SECRETS)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run(dir: &Path, command: &str) -> Output {
    let child = shell(dir, command).spawn().unwrap();
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(WAIT) {
        Ok(output) => output.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
            panic!("{command}: did not finish within {WAIT:?}");
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// Starts a `serve` example on a free port, waits for it to listen, stops it with Ctrl-C.
fn serve(dir: &Path, command: &str) {
    let command = if command.contains("--port") {
        command.to_owned()
    } else {
        format!("{command} --port 0")
    };
    let mut child = shell(dir, &format!("exec {command}")).spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    let first = rx.recv_timeout(WAIT);
    let _ = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let first = first.unwrap_or_else(|_| panic!("{command}: never listened"));
    assert!(
        first.starts_with("listening on http://127.0.0.1:"),
        "{command}: {first}"
    );
    assert_eq!(status.code(), Some(0), "{command}");
}

#[test]
fn every_command_line_example_in_the_readme_runs_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let commands = commands(&sections());
    // Nothing listens there: a `send` example signs, then fails to deliver (exit 1),
    // which says its arguments are right.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let nowhere = format!("http://127.0.0.1:{}", closed.local_addr().unwrap().port());
    drop(closed);
    let mut ran = 0;
    for command in &commands {
        ran += 1;
        if command.starts_with("countersign serve ") {
            serve(dir.path(), command);
            continue;
        }
        if command.starts_with("countersign send ") {
            let mut words: Vec<&str> = command.split_whitespace().collect();
            if let Some(at) = words.iter().position(|w| *w == "--delay") {
                words.drain(at..at + 2);
            }
            let command = words.join(" ").replace("http://127.0.0.1:3000", &nowhere);
            let o = run(dir.path(), &command);
            assert_eq!(o.status.code(), Some(1), "{command}: {}", text(&o));
            assert!(
                text(&o).contains("cannot deliver to"),
                "{command}: {}",
                text(&o)
            );
            continue;
        }
        let o = run(dir.path(), command);
        let expected = if command.starts_with("countersign diagnose ") {
            1
        } else {
            0
        };
        assert_eq!(o.status.code(), Some(expected), "{command}: {}", text(&o));
        for (_, secret) in SECRETS {
            assert!(!text(&o).contains(secret), "{command}: {}", text(&o));
        }
        let stdout = String::from_utf8_lossy(&o.stdout);
        if command.contains("--secret-env WH_NEW") {
            assert_eq!(stdout, "{\"valid\":true,\"key\":\"WH_NEW\"}\n", "{command}");
        }
        if command.starts_with("countersign diagnose ") {
            assert!(
                stdout.contains("diagnosis: trailing slash"),
                "{command}: {stdout}"
            );
        }
        if command.starts_with("countersign sign standard-webhooks") {
            assert!(
                stdout.contains("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="),
                "{command}: {stdout}"
            );
        }
    }
    let count = |prefix: &str| commands.iter().filter(|c| c.starts_with(prefix)).count();
    assert_eq!(count("countersign verify "), 3, "{commands:#?}");
    assert_eq!(count("countersign serve "), 3);
    assert_eq!(count("countersign send "), 3);
    assert!(ran >= 17, "{ran}: {commands:#?}");

    // Without --now, the verify example says how old the recording is, and what to pass.
    let verify = commands
        .iter()
        .find(|c| c.contains("--secret-env WH_NEW"))
        .unwrap();
    let undated = verify.replace("--now 2026-01-27T09:23:30Z", "");
    let o = run(dir.path(), &undated);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        stdout.contains(" days old, more than the 60 seconds allowed"),
        "{stdout}"
    );
}
