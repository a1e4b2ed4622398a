//! A real Docker daemon for tests: the one `DOCKER_HOST` names (`.ci/run` starts one), and
//! the test image [`crate::TEST_IMAGE`], imported from a busybox root filesystem (Debian's
//! busybox-static), never pulled.

use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::TEST_IMAGE;

/// Whether a daemon and busybox are here; the test image imported once. `false` (and
/// why, printed) outside CI; a failure in CI.
pub fn docker() -> bool {
    static READY: OnceLock<Result<(), String>> = OnceLock::new();
    match READY.get_or_init(import_image) {
        Ok(()) => true,
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI must provide a Docker daemon (.ci/run starts one): {why}")
        }
        Err(why) => {
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn import_image() -> Result<(), String> {
    let version = Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .map_err(|e| format!("no `docker` command: {e}"))?;
    if !version.status.success() {
        return Err(format!(
            "no Docker daemon answers (DOCKER_HOST={:?}): {}",
            std::env::var("DOCKER_HOST").unwrap_or_default(),
            String::from_utf8_lossy(&version.stderr).trim()
        ));
    }
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists())
        .ok_or("no busybox (Debian's busybox-static) to build the test image from")?;
    let root = tempfile::tempdir().map_err(|e| e.to_string())?;
    let bin = root.path().join("bin");
    std::fs::create_dir_all(&bin).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(root.path().join("tmp")).map_err(|e| e.to_string())?;
    std::fs::copy(busybox, bin.join("busybox")).map_err(|e| e.to_string())?;
    for applet in [
        "sh", "echo", "cat", "sleep", "wc", "sort", "seq", "test", "printf", "env",
    ] {
        std::os::unix::fs::symlink("busybox", bin.join(applet)).map_err(|e| e.to_string())?;
    }
    let tar = Command::new("tar")
        .args(["-C", &root.path().display().to_string(), "-c", "."])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run tar: {e}"))?;
    let imported = Command::new("docker")
        .args(["import", "-", TEST_IMAGE])
        .stdin(tar.stdout.ok_or("tar has no output")?)
        .output()
        .map_err(|e| e.to_string())?;
    if !imported.status.success() {
        return Err(format!(
            "cannot import the test image: {}",
            String::from_utf8_lossy(&imported.stderr)
        ));
    }
    Ok(())
}
