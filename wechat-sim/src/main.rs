//! `wechat-sim`: runs the simulator until killed.
//!
//! Usage: `wechat-sim [--appid ID] [--secret SECRET] [--app ID:SECRET]... [--port N]`. `--app`
//! adds an app (as many as needed). It prints its base URL on the first line of standard output
//! once it accepts connections, and what it serves on standard error; `--help` says how to use it.

use std::io::Write;
use wechat_sim::{Config, Simulator};

fn main() {
    let mut config = Config {
        appid: "wx0123456789abcdef".into(),
        secret: "0123456789abcdef0123456789abcdef".into(),
        more: Vec::new(),
    };
    let mut port = 0u16;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!("{USAGE}");
            return;
        }
        let value = args.next().unwrap_or_else(|| usage(&format!("{flag} needs a value")));
        match flag.as_str() {
            "--appid" => config.appid = value,
            "--secret" => config.secret = value,
            "--app" => match value.split_once(':') {
                Some((appid, secret)) => config.more.push((appid.into(), secret.into())),
                None => usage("--app takes ID:SECRET"),
            },
            "--port" => port = value.parse().unwrap_or_else(|_| usage("--port takes a number")),
            _ => usage(&format!("unknown flag {flag}")),
        }
    }
    let (config_appid, more_appids): (String, Vec<String>) =
        (config.appid.clone(), config.more.iter().map(|(appid, _)| appid.clone()).collect());
    let simulator = Simulator::start_on(config, port).unwrap_or_else(|e| {
        eprintln!("wechat-sim: cannot listen: {e}");
        std::process::exit(1)
    });
    println!("{}", simulator.url());
    let _ = std::io::stdout().flush();
    let apps: Vec<&str> =
        std::iter::once(config_appid.as_str()).chain(more_appids.iter().map(String::as_str)).collect();
    eprintln!(
        "wechat-sim: serving WeChat's server API for {} at {} (Ctrl-C stops it)",
        apps.join(", "),
        simulator.url()
    );
    simulator.wait();
}

const USAGE: &str = "usage: wechat-sim [--appid ID] [--secret SECRET] [--app ID:SECRET]... [--port N]

WeChat's server API on loopback, for tests and demos (wechat-sim/README.md: the code grammar).
  --appid, --secret   the first app's credentials (default wx0123456789abcdef and a fixed secret)
  --app ID:SECRET     one more app; repeat for more
  --port N            the port (default: a free one)
Prints its base URL on the first line of standard output.";

fn usage(problem: &str) -> ! {
    eprintln!("wechat-sim: {problem}\n{USAGE}");
    std::process::exit(2)
}
