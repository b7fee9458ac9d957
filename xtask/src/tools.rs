//! The programs CI needs beside the Rust toolchain (`redis-server` for the
//! Redis backend's tests, `mdbook` for the guide), and those `cargo xtask
//! bench proxy` runs (nginx, Varnish, wrk): found where they are, or
//! installed, with a clear error naming the command to run where they
//! cannot be.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The mdBook release the guide is built with, installed when no `mdbook`
/// is found. `--locked` with a fixed version builds the same binary on
/// every machine.
pub const MDBOOK_VERSION: &str = "0.5.4";

/// A program a step needs, and whether this run installed it.
#[derive(Debug)]
pub struct Found {
    /// What to run: a name looked up on the PATH, or a path.
    pub path: PathBuf,
    /// How this run installed it (the command), if it did.
    pub installed_with: Option<String>,
}

impl Found {
    /// One line for the log: the program's version, and where it came from.
    pub fn describe(&self) -> String {
        let version = version(&self.path).unwrap_or_else(|| self.path.display().to_string());
        match &self.installed_with {
            None => format!("{version} (already installed)"),
            Some(command) => format!("{version}: INSTALLED by this run with `{command}`"),
        }
    }
}

/// The first line `program --version` prints, if it runs and succeeds.
pub fn version(program: &Path) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .ok()?;
    output.status.success().then(|| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .trim()
            .to_owned()
    })
}

/// `redis-server` and `redis-cli` (which joins the test cluster),
/// installed with `apt-get` (as root, or with a `sudo` that needs no
/// password) when either is missing. The system service the package may
/// start is stopped and disabled: the tests start their own servers, on
/// free ports.
pub fn redis_server() -> Result<Found, String> {
    let elsewhere = "Fedora: `sudo dnf install redis`, macOS: `brew install redis`";
    let server = apt_program(&AptProgram {
        program: "redis-server",
        package: "redis-server",
        service: Some("redis-server"),
        elsewhere,
        task: "ci",
    })?;
    let cli = apt_program(&AptProgram {
        program: "redis-cli",
        package: "redis-tools",
        service: None,
        elsewhere,
        task: "ci",
    })?;
    Ok(Found {
        installed_with: server.installed_with.or(cli.installed_with),
        ..server
    })
}

/// `nginx`, `varnishd` and `wrk` for `cargo xtask bench proxy`, each
/// installed with `apt-get` as [`redis_server`] is when it is missing;
/// their system services are stopped (the bench starts its own, on free
/// loopback ports).
pub fn proxy_bench_programs() -> Result<Vec<(&'static str, Found)>, String> {
    let programs = [
        AptProgram {
            program: "nginx",
            package: "nginx",
            service: Some("nginx"),
            elsewhere: "Fedora: `sudo dnf install nginx`, macOS: `brew install nginx`",
            task: "bench proxy",
        },
        AptProgram {
            program: "varnishd",
            package: "varnish",
            service: Some("varnish"),
            elsewhere: "Fedora: `sudo dnf install varnish`, macOS: `brew install varnish`",
            task: "bench proxy",
        },
        AptProgram {
            program: "wrk",
            package: "wrk",
            service: None,
            elsewhere: "Fedora: `sudo dnf install wrk`, macOS: `brew install wrk`",
            task: "bench proxy",
        },
    ];
    programs
        .iter()
        .map(|program| Ok((program.program, apt_program(program)?)))
        .collect()
}

/// A program that comes in a Debian package.
struct AptProgram {
    /// What to run (on the PATH; `/usr/sbin` included).
    program: &'static str,
    package: &'static str,
    /// The system service the package may start, to stop.
    service: Option<&'static str>,
    /// How to install it where there is no apt-get.
    elsewhere: &'static str,
    /// The `cargo xtask` task to run again once it is installed.
    task: &'static str,
}

/// `wanted.program`, installed with `apt-get` when it is not found.
fn apt_program(wanted: &AptProgram) -> Result<Found, String> {
    let program = PathBuf::from(wanted.program);
    if runs(&program) {
        return Ok(Found {
            path: program,
            installed_with: None,
        });
    }
    let AptProgram {
        program: name,
        package,
        task,
        ..
    } = wanted;
    let manual = format!(
        "Install it (Debian/Ubuntu: `sudo apt-get install {package}`, {}), \
         then run `cargo xtask {task}` again.",
        wanted.elsewhere
    );
    if version(Path::new("apt-get")).is_none() {
        return Err(format!(
            "{name} is not installed, and there is no apt-get here to install it with. {manual}"
        ));
    }
    let sudo = match privilege() {
        Privilege::Root => None,
        Privilege::PasswordlessSudo => Some("sudo"),
        Privilege::None => {
            return Err(format!(
                "{name} is not installed, and this user can install nothing \
                 (not root, and sudo asks for a password). Run \
                 `sudo apt-get install {package}`, then `cargo xtask {task}` again."
            ));
        }
    };
    let apt = |args: &[&str]| -> Result<(), String> {
        // No questions asked; through `env`, since sudo clears the
        // environment it is given.
        let mut command = match sudo {
            Some(sudo) => {
                let mut command = Command::new(sudo);
                command.args(["env", "DEBIAN_FRONTEND=noninteractive", "apt-get"]);
                command
            }
            None => {
                let mut command = Command::new("apt-get");
                command.env("DEBIAN_FRONTEND", "noninteractive");
                command
            }
        };
        command.args(args).stdin(Stdio::null());
        let shown = format!("{}apt-get {}", sudo.map_or("", |_| "sudo "), args.join(" "));
        println!("$ {shown}");
        let status = command
            .status()
            .map_err(|e| format!("could not run `{shown}`: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!(
                "`{shown}` failed ({status}); {name} is not installed. {manual}"
            ))
        }
    };
    apt(&["update", "-qq"])?;
    apt(&["install", "-y", "-qq", "--no-install-recommends", package])?;
    if let Some(service) = wanted.service {
        stop_system_service(service, sudo);
    }
    if !runs(&program) {
        return Err(format!(
            "apt-get installed {package}, but `{name}` does not run. {manual}"
        ));
    }
    Ok(Found {
        path: program,
        installed_with: Some(format!(
            "{}apt-get install {package}",
            sudo.map_or("", |_| "sudo ")
        )),
    })
}

/// Whether `program` can be started at all: wrk has no flag that exits
/// with success, so its exit status says nothing.
fn runs(program: &Path) -> bool {
    Command::new(program)
        .arg("-v")
        .stdin(Stdio::null())
        .output()
        .is_ok()
}

/// Who may install packages.
enum Privilege {
    Root,
    PasswordlessSudo,
    None,
}

fn privilege() -> Privilege {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .ok()
        .filter(|output| output.status.success())
        .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned());
    if uid.as_deref() == Some("0") {
        return Privilege::Root;
    }
    // `-n`: fail at once instead of asking for a password.
    let sudo = Command::new("sudo")
        .args(["-n", "true"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match sudo {
        Ok(status) if status.success() => Privilege::PasswordlessSudo,
        _ => Privilege::None,
    }
}

/// Debian packages start their system service (`redis-server` on port
/// 6379, nginx on 80, Varnish on 6081) where services may start. Nothing
/// here uses it, so it is stopped and kept from starting at boot; where it
/// never started (a container whose policy-rc.d forbids it) this is a
/// no-op.
fn stop_system_service(service: &str, sudo: Option<&str>) {
    let systemd = Path::new("/run/systemd/system").is_dir();
    let commands: &[&[&str]] = if systemd {
        &[&["systemctl", "disable", "--now", service]]
    } else {
        &[
            &["service", service, "stop"],
            &["update-rc.d", service, "disable"],
        ]
    };
    for args in commands {
        let mut command = match sudo {
            Some(sudo) => {
                let mut command = Command::new(sudo);
                command.args(*args);
                command
            }
            None => {
                let mut command = Command::new(args[0]);
                command.args(&args[1..]);
                command
            }
        };
        let done = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if done {
            println!("the system {service} service: `{}` done", args.join(" "));
        }
    }
}

/// For tasks that run the Redis backend but install nothing (`cargo xtask
/// conformance`, `bench`): fails with the command to run where
/// `redis-server` or `redis-cli` (for the test cluster) is missing.
pub fn require_redis_server(task: &str) -> Result<(), String> {
    if version(Path::new("redis-server")).is_none() {
        return Err(format!(
            "redis-server is not installed, and `cargo xtask {task}` runs the Redis backend \
             against a real one. Install it (Debian/Ubuntu: `sudo apt-get install redis-server`; \
             `cargo xtask ci` installs it when it may) and run again."
        ));
    }
    // The six-node test cluster is joined with `redis-cli --cluster create`.
    if version(Path::new("redis-cli")).is_none() {
        return Err(format!(
            "redis-cli is not installed, and `cargo xtask {task}` starts a Redis Cluster with \
             it. Install it (Debian/Ubuntu: `sudo apt-get install redis-tools`; `cargo xtask ci` \
             installs it when it may) and run again."
        ));
    }
    Ok(())
}

/// `mdbook`: the one on the PATH, else the one an earlier run installed
/// into cargo's bin directory, else [`MDBOOK_VERSION`] installed there now
/// with `cargo install --locked`.
pub fn mdbook() -> Result<Found, String> {
    let on_path = PathBuf::from("mdbook");
    if version(&on_path).is_some() {
        return Ok(Found {
            path: on_path,
            installed_with: None,
        });
    }
    let installed =
        cargo_bin_dir().map(|dir| dir.join(format!("mdbook{}", std::env::consts::EXE_SUFFIX)));
    if let Some(path) = &installed
        && version(path).is_some()
    {
        return Ok(Found {
            path: path.clone(),
            installed_with: None,
        });
    }
    let spec = format!("mdbook@{MDBOOK_VERSION}");
    crate::run_step(
        &format!("cargo install {spec} --locked (mdbook is not installed)"),
        &mut crate::cargo(&["install", &spec, "--locked"]),
    )
    .map_err(|e| {
        format!("{e}; install mdBook with `cargo install {spec} --locked` and run again")
    })?;
    let path = installed
        .filter(|path| version(path).is_some())
        .or_else(|| version(&on_path).map(|_| on_path))
        .ok_or_else(|| {
            format!("cargo installed {spec}, but no `mdbook` runs; is cargo's bin directory on the PATH?")
        })?;
    Ok(Found {
        path,
        installed_with: Some(format!("cargo install {spec} --locked")),
    })
}

/// Where `cargo install` puts binaries: `$CARGO_INSTALL_ROOT/bin`, else
/// `$CARGO_HOME/bin`, else `~/.cargo/bin`.
fn cargo_bin_dir() -> Option<PathBuf> {
    let root = std::env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| std::env::var_os("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    Some(root.join("bin"))
}
