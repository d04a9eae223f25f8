//! Web interface benchmark (issue 5): page render times at the demo's default scale.
//!
//! Starts `agora demo` (100 000 residents unless AGORA_BENCH_SCALE says otherwise; data
//! cached in AGORA_BENCH_DIR), signs in to the employment agency's node as its demo analyst
//! and asks for each page AGORA_BENCH_REPS times, one request at a time, from a client on
//! the same machine: the time from sending the request to the last byte of the page, so an
//! upper bound of the server's render time (it includes HTTP on loopback). p50 and p99 per
//! page; the target is 50 ms.
//!
//! Output: tab-separated `name  metric  median  unit  min  max  n` lines and `#` notes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;
use common::{emit, env_u64};

fn percentile(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let i = ((s.len() as f64 - 1.0) * p).round() as usize;
    s[i]
}

/// The page paths measured, with their names.
const PAGES: &[(&str, &str)] = &[
    ("catalog_search", "/catalog?q=income"),
    (
        "catalog_filtered",
        "/catalog?q=&member=tax-office&classification=&theme=",
    ),
    ("catalog_all", "/catalog"),
    (
        "product_page_remote",
        "/catalog/population-registry/residents",
    ),
    ("product_page_own", "/catalog/employment-agency/job_seekers"),
    ("requests_list", "/requests"),
];

fn main() {
    let scale = env_u64("AGORA_BENCH_SCALE", 100_000);
    let reps = env_u64("AGORA_BENCH_REPS", 300) as usize;
    let root = std::env::var("AGORA_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| std::env::temp_dir().join("agora-bench"));
    let dir = root.join(format!("web-demo-{scale}"));
    let eco_path = dir.join("ecosystem.json");
    let _ = std::fs::remove_file(&eco_path);
    eprintln!(
        "# starting the demo ({scale} residents) in {}",
        dir.display()
    );
    let mut demo = Command::new(env!("CARGO_BIN_EXE_agora"))
        .args(["demo", "--base-port", "0", "--scale", &scale.to_string()])
        .arg("--data-dir")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("agora demo starts");
    let started = Instant::now();
    let eco: serde_json::Value = loop {
        if let Ok(text) = std::fs::read_to_string(&eco_path)
            && let Ok(v) = serde_json::from_str(&text)
        {
            break v;
        }
        assert!(demo.try_wait().unwrap().is_none(), "the demo exited early");
        assert!(
            started.elapsed() < Duration::from_secs(900),
            "the demo took too long"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let ea = eco["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "employment-agency")
        .unwrap()
        .clone();
    let url = ea["base_url"].as_str().unwrap().to_owned();
    let password = ea["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "analyst")
        .unwrap()["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let session = sign_in(&http, &url, &password).await;
        eprintln!(
            "# 2 cores; {reps} requests per page, one at a time, after 20 to warm up; demo ready in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        for (name, path) in PAGES {
            let get = || async {
                let t = Instant::now();
                let r = http
                    .get(format!("{url}{path}"))
                    .header("cookie", format!("agora_session={session}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200, "{path}");
                let body = r.bytes().await.unwrap();
                (t.elapsed().as_secs_f64() * 1000.0, body.len())
            };
            for _ in 0..20 {
                get().await;
            }
            let mut times = Vec::with_capacity(reps);
            let mut size = 0;
            for _ in 0..reps {
                let (ms, len) = get().await;
                times.push(ms);
                size = len;
            }
            emit("web", &format!("{name}_p50"), &[percentile(&times, 0.5)], "ms");
            emit("web", &format!("{name}_p99"), &[percentile(&times, 0.99)], "ms");
            println!("# {name}: {path}, {size} bytes");
        }
    });
    let _ = demo.kill();
    let _ = demo.wait();
}

/// Signs in as the demo analyst; returns the session cookie's value.
async fn sign_in(http: &reqwest::Client, url: &str, password: &str) -> String {
    let form = http.get(format!("{url}/sign-in")).send().await.unwrap();
    let pre = cookie(&form, "agora_sign_in");
    let body = form.text().await.unwrap();
    let marker = "name=\"csrf\" value=\"";
    let start = body.find(marker).unwrap() + marker.len();
    let csrf = body[start..].split('"').next().unwrap().to_owned();
    let r = http
        .post(format!("{url}/sign-in"))
        .header("cookie", format!("agora_sign_in={pre}"))
        .form(&[
            ("csrf", csrf.as_str()),
            ("next", "/catalog"),
            ("username", "analyst"),
            ("password", password),
        ])
        .send()
        .await
        .unwrap();
    cookie(&r, "agora_session")
}

fn cookie(r: &reqwest::Response, name: &str) -> String {
    r.headers()
        .get_all(reqwest::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| {
            let (k, val) = v.split(';').next()?.split_once('=')?;
            (k == name).then(|| val.to_owned())
        })
        .unwrap_or_else(|| panic!("no {name} cookie"))
}
