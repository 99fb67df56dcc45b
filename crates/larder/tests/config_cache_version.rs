//! `CACHE_VERSION`, the Django original's setting, read from the real
//! process environment as `LARDER_VERSION`; and a version set in code
//! layered onto the environment's config.
//!
//! The environment is never changed in this process (other tests in the
//! binary read it, and changing it is `unsafe` in Rust 2024): each case
//! runs this test again in a child process with its own environment.

use std::process::Command;

use larder::Config;

const CHILD: &str = "LARDER_CACHE_VERSION_CHILD";

/// In the child: what the environment gives, as one line per reading.
fn report() -> String {
    let from_env = match Config::from_env() {
        Ok(config) => {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            // No REDIS_URL: the in-process store.
            let cache = runtime
                .block_on(larder::Cache::connect(config.clone()))
                .unwrap();
            format!(
                "version={} key={}",
                config.version(),
                cache.physical_key("product:1")
            )
        }
        Err(err) => format!("error={err}"),
    };
    let layered = match Config::builder_from_env().and_then(|b| b.version("2").build()) {
        Ok(config) => format!(
            "layered version={} prefix={}",
            config.version(),
            config.prefix()
        ),
        Err(err) => format!("layered error={err}"),
    };
    format!("{from_env}\n{layered}")
}

/// Runs the test in a child whose environment holds exactly `vars` of
/// the variables read here.
fn child(vars: &[(&str, &str)]) -> String {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            "cache_version_is_read_as_larder_version",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, "1");
    for name in [
        "CACHE_VERSION",
        "LARDER_VERSION",
        "LARDER_PREFIX",
        "REDIS_URL",
    ] {
        command.env_remove(name);
    }
    command.envs(vars.iter().copied());
    let output = command.output().unwrap();
    assert!(output.status.success(), "child failed: {output:?}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    stdout
        .split("REPORT-BEGIN\n")
        .nth(1)
        .and_then(|rest| rest.split("\nREPORT-END").next())
        .expect("the child printed its report")
        .to_owned()
}

#[test]
fn cache_version_is_read_as_larder_version() {
    if std::env::var_os(CHILD).is_some() {
        println!("REPORT-BEGIN\n{}\nREPORT-END", report());
        return;
    }

    let unset = child(&[]);
    assert!(unset.starts_with("version=1 key=larder:1:"), "{unset}");

    // The Django original's settings.py `CACHE_VERSION = "1.1"`, deployed
    // as a variable: a bump moves every key.
    let django = child(&[("CACHE_VERSION", "1.1")]);
    assert!(django.starts_with("version=1.1 "), "{django}");
    let line = django.lines().next().unwrap();
    assert!(
        !unset.contains(&line["version=1.1 ".len()..]),
        "{django} vs {unset}"
    );

    let both = child(&[("CACHE_VERSION", "1.1"), ("LARDER_VERSION", "1.1")]);
    assert!(both.starts_with("version=1.1 "), "{both}");

    // Both set and different: which bump was meant cannot be guessed.
    let conflict = child(&[("CACHE_VERSION", "1.1"), ("LARDER_VERSION", "2")]);
    let first = conflict.lines().next().unwrap();
    assert!(first.starts_with("error="), "{conflict}");
    assert!(first.contains("CACHE_VERSION=\"1.1\""), "{conflict}");
    assert!(first.contains("LARDER_VERSION=\"2\""), "{conflict}");

    // A version set in code replaces the environment's; the rest stays.
    let layered = child(&[("CACHE_VERSION", "1.1"), ("LARDER_PREFIX", "shop")]);
    assert!(
        layered.ends_with("layered version=2 prefix=shop"),
        "{layered}"
    );
}
