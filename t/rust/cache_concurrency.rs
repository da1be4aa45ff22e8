//! Concurrency tests for the shared identity cache (`identity_cache_zone`,
//! `identity_cache`, `identity_cache_lock`).
//!
//! Each test starts its own nginx (a master and two workers) in its own temporary prefix,
//! on its own ports, with the identity module and the echo module loaded. The same
//! instance serves three things: the gateway (`/api/`), a mock user service that answers
//! `{"id":"<session cookie>"}` and writes one access-log line per call, and a mock
//! business service that echoes the `X-User-Id` it received. User-service calls are
//! counted from that access log.
//!
//! The gateway listens with `reuseport`, so the kernel spreads client connections over
//! both workers and single flight is exercised across workers, not only within one.
//!
//! Needs `NGINX_BINARY`, `IDENTITY_MODULE` and `ECHO_MODULE` (`make unit` sets them).

mod common;

use common::{bad_log_lines, free_ports, required_file, running_as_root, unique_path, worker_pids};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------------------
// Environment

struct Paths {
    nginx: PathBuf,
    identity: PathBuf,
    echo: PathBuf,
}

fn paths() -> Paths {
    Paths {
        nginx: required_file("NGINX_BINARY"),
        identity: required_file("IDENTITY_MODULE"),
        echo: required_file("ECHO_MODULE"),
    }
}

// ---------------------------------------------------------------------------------------
// nginx

#[derive(Clone, Copy)]
struct Options {
    /// `identity_cache_lock`.
    lock: bool,
    /// `echo_sleep` of the mock user service, in seconds; `None` answers at once.
    user_delay: Option<f64>,
    /// The `identity_cache_zone` size.
    zone_size: &'static str,
    /// `identity_cache_lock_timeout`.
    lock_timeout: &'static str,
    /// A user service the test runs itself on this port, instead of the echo location.
    external_user: Option<u16>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            lock: true,
            user_delay: None,
            zone_size: "1m",
            lock_timeout: "5s",
            external_user: None,
        }
    }
}

struct Ports {
    gateway: u16,
    user: u16,
    business: u16,
}

/// A running nginx; dropping it stops it (and removes its prefix unless the test failed).
struct Nginx {
    binary: PathBuf,
    prefix: PathBuf,
    conf: PathBuf,
    master_pid: Option<u32>,
    ports: Ports,
}

fn config(paths: &Paths, module: &Path, prefix: &Path, ports: &Ports, opt: Options) -> String {
    let p = prefix.display();
    let user = if running_as_root() {
        "user root;\n"
    } else {
        ""
    };
    let lock = if opt.lock { "on" } else { "off" };
    let delay = opt
        .user_delay
        .map(|s| format!("echo_sleep {s};"))
        .unwrap_or_default();
    format!(
        r#"load_module {identity};
load_module {echo};
{user}worker_processes 2;
worker_rlimit_nofile 8192;
pid {p}/logs/nginx.pid;
error_log {p}/logs/error.log info;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {p}/tmp/client_body;
    proxy_temp_path {p}/tmp/proxy;
    fastcgi_temp_path {p}/tmp/fastcgi;
    uwsgi_temp_path {p}/tmp/uwsgi;
    scgi_temp_path {p}/tmp/scgi;

    log_format gateway '$pid $cookie_session $identity_status $status';
    log_format user '$pid $cookie_session';

    identity_cache_zone users:{zone};

    upstream user_service {{
        server 127.0.0.1:{upstream_user_port};
        keepalive 64;
    }}
    upstream business {{
        server 127.0.0.1:{business_port};
        keepalive 64;
    }}

    server {{
        listen 127.0.0.1:{gateway_port} reuseport;
        access_log {p}/logs/gateway.log gateway;

        location = /ping {{
            return 200 "pong";
        }}

        location = /metrics {{
            identity_metrics;
        }}

        location = /_identity {{
            internal;
            proxy_pass http://user_service/user;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}

        location /api/ {{
            identity_request /_identity;
            identity_cache users;
            identity_cache_valid 200 60s;
            identity_cache_lock {lock};
            identity_cache_lock_timeout {lock_timeout};
            identity_header X-User-Id $identity_claim_id;
            add_header X-Identity-Status $identity_status always;
            proxy_pass http://business/backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}

    server {{
        listen 127.0.0.1:{user_port};
        location /user {{
            access_log {p}/logs/user.log user;
            {delay}
            echo -n '{{"id":"$cookie_session"}}';
        }}
    }}

    server {{
        listen 127.0.0.1:{business_port};
        location /backend {{
            return 200 "id=$http_x_user_id";
        }}
    }}
}}
"#,
        identity = module.display(),
        echo = paths.echo.display(),
        zone = opt.zone_size,
        lock_timeout = opt.lock_timeout,
        gateway_port = ports.gateway,
        user_port = ports.user,
        upstream_user_port = opt.external_user.unwrap_or(ports.user),
        business_port = ports.business,
    )
}

impl Nginx {
    /// Starts nginx for `test`, retrying with new ports if one was taken meanwhile.
    fn start(test: &str, opt: Options) -> Nginx {
        let paths = paths();
        let mut last_error = String::new();
        for _ in 0..5 {
            let &[gateway, user, business] = &free_ports(3)[..] else {
                unreachable!("free_ports(3) gives three ports")
            };
            let ports = Ports {
                gateway,
                user,
                business,
            };
            let prefix = unique_path(test);
            for dir in ["conf", "logs", "tmp"] {
                std::fs::create_dir_all(prefix.join(dir))
                    .unwrap_or_else(|e| panic!("create {}/{dir}: {e}", prefix.display()));
            }
            // Load a private copy: a concurrent `make module` rewrites the .so in place,
            // which would crash workers mapping it.
            let module = prefix.join("conf/ngx_http_identity_module.so");
            std::fs::copy(&paths.identity, &module).unwrap_or_else(|e| {
                panic!(
                    "copy {} to {}: {e}",
                    paths.identity.display(),
                    module.display()
                )
            });
            let conf = prefix.join("conf/nginx.conf");
            std::fs::write(&conf, config(&paths, &module, &prefix, &ports, opt))
                .unwrap_or_else(|e| panic!("write {}: {e}", conf.display()));
            let mut nginx = Nginx {
                binary: paths.nginx.clone(),
                prefix,
                conf,
                master_pid: None,
                ports,
            };
            let out = Command::new(&nginx.binary)
                .arg("-p")
                .arg(&nginx.prefix)
                .arg("-c")
                .arg(&nginx.conf)
                .arg("-e")
                .arg(nginx.prefix.join("logs/error.log"))
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", nginx.binary.display()));
            if !out.status.success() {
                last_error = format!(
                    "nginx did not start ({}):\n{}\nerror.log:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr),
                    nginx.error_log()
                );
                let in_use = last_error.contains("Address already in use");
                if in_use {
                    continue; // Drop removes the prefix; try other ports.
                }
                panic!("{last_error}");
            }
            nginx.wait_ready();
            return nginx;
        }
        panic!("{last_error}");
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let pid_file = self.prefix.join("logs/nginx.pid");
        loop {
            if self.master_pid.is_none() {
                self.master_pid = std::fs::read_to_string(&pid_file)
                    .ok()
                    .and_then(|s| s.trim().parse().ok());
            }
            let up = [self.ports.gateway, self.ports.user, self.ports.business]
                .iter()
                .all(|&port| {
                    let addr = SocketAddr::from(([127, 0, 0, 1], port));
                    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
                });
            if up && self.master_pid.is_some() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nginx in {} not ready after 10 s; error.log:\n{}",
                self.prefix.display(),
                self.error_log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.ports.gateway)
    }

    fn read_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.prefix.join("logs").join(name)).unwrap_or_default()
    }

    fn error_log(&self) -> String {
        self.read_log("error.log")
    }

    /// Lines of the mock user service's access log: one per call, `<pid> <cookie>`.
    /// Waits a little first: nginx writes an access-log line when the request ends.
    async fn user_calls(&self) -> Vec<(String, String)> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        self.read_log("user.log")
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect()
    }

    /// Gateway access-log lines: `(pid, cookie, $identity_status, status)`.
    fn gateway_lines(&self) -> Vec<(String, String, String, String)> {
        self.read_log("gateway.log")
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.len() == 4).then(|| (f[0].into(), f[1].into(), f[2].into(), f[3].into()))
            })
            .collect()
    }

    /// No alert, crit or emerg, no [error], no crashed worker.
    fn assert_clean_error_log(&self) {
        let log = self.error_log();
        let bad = bad_log_lines(&log, true);
        assert!(
            bad.is_empty(),
            "error.log of {} has alert/crit/emerg/error lines or a crashed worker:\n{}",
            self.prefix.display(),
            bad.join("\n")
        );
    }

    fn pid_alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(false)
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = Command::new(&self.binary)
            .arg("-p")
            .arg(&self.prefix)
            .arg("-c")
            .arg(&self.conf)
            .arg("-e")
            .arg(self.prefix.join("logs/error.log"))
            .args(["-s", "stop"])
            .output();
        if let Some(pid) = self.master_pid {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Self::pid_alive(pid) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            if Self::pid_alive(pid) {
                let _ = Command::new("kill")
                    .args(["-KILL", &pid.to_string()])
                    .status();
            }
        }
        if std::thread::panicking() {
            eprintln!(
                "nginx prefix kept for inspection: {}",
                self.prefix.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.prefix);
        }
    }
}

// ---------------------------------------------------------------------------------------
// HTTP

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("reqwest client")
}

/// The value of `sample` (its name and labels as exposed) on the gateway's /metrics.
async fn metric(nginx: &Nginx, sample: &str) -> u64 {
    let body = client()
        .get(nginx.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("the metrics body");
    body.lines()
        .find_map(|l| l.strip_prefix(sample)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {sample} in:\n{body}"))
}

#[derive(Debug)]
struct Reply {
    cookie: String,
    status: u16,
    identity: String,
    body: String,
}

impl Reply {
    fn is_correct(&self) -> bool {
        self.status == 200 && self.body == format!("id={}", self.cookie)
    }
}

async fn get(client: &reqwest::Client, url: &str, cookie: &str) -> Result<Reply, String> {
    let resp = client
        .get(url)
        .header("Cookie", format!("session={cookie}"))
        .send()
        .await
        .map_err(|e| format!("{cookie}: {e}"))?;
    let status = resp.status().as_u16();
    let identity = resp
        .headers()
        .get("x-identity-status")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    let body = resp.text().await.map_err(|e| format!("{cookie}: {e}"))?;
    Ok(Reply {
        cookie: cookie.to_string(),
        status,
        identity,
        body,
    })
}

/// Opens `n` keep-alive connections in the client's pool (concurrent requests to a
/// location without identity), so that a following burst goes out at once.
async fn warm_up(client: &reqwest::Client, nginx: &Nginx, n: usize) {
    let url = nginx.url("/ping");
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            tokio::spawn(async move {
                let resp = client.get(&url).send().await.expect("GET /ping");
                assert_eq!(resp.status().as_u16(), 200, "GET /ping");
                resp.text().await.expect("GET /ping body");
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("warm-up task");
    }
}

/// Sends one request per cookie, all at once, and returns the replies in order.
async fn burst(client: &reqwest::Client, url: &str, cookies: &[String]) -> Vec<Reply> {
    let tasks: Vec<_> = cookies
        .iter()
        .map(|cookie| {
            let (client, url, cookie) = (client.clone(), url.to_string(), cookie.clone());
            tokio::spawn(async move { get(&client, &url, &cookie).await })
        })
        .collect();
    let mut replies = Vec::with_capacity(tasks.len());
    for t in tasks {
        match t.await.expect("request task") {
            Ok(r) => replies.push(r),
            Err(e) => panic!("request failed: {e}"),
        }
    }
    replies
}

fn assert_all_correct(replies: &[Reply], nginx: &Nginx) {
    let wrong: Vec<&Reply> = replies
        .iter()
        .filter(|r| !r.is_correct())
        .take(10)
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} replies are not 200 with body id=<cookie>, e.g. {wrong:#?}\nerror.log:\n{}",
        replies.iter().filter(|r| !r.is_correct()).count(),
        replies.len(),
        tail(&nginx.error_log(), 30)
    );
}

fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn count_by<'a>(items: impl IntoIterator<Item = &'a str>) -> BTreeMap<String, usize> {
    let mut map = BTreeMap::new();
    for s in items {
        *map.entry(s.to_string()).or_insert(0) += 1;
    }
    map
}

// ---------------------------------------------------------------------------------------
// Tests

/// 200 simultaneous requests with one new credential, spread over both workers: exactly
/// one user-service call; one MISS, every other request HIT or COALESCED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_cookie_200_concurrent_requests_make_one_call() {
    let nginx = Nginx::start(
        "single-flight",
        Options {
            lock: true,
            user_delay: Some(0.2),
            zone_size: "1m",
            ..Options::default()
        },
    );
    let client = client();
    warm_up(&client, &nginx, 200).await;

    let cookies = vec!["sf-alice".to_string(); 200];
    let replies = burst(&client, &nginx.url("/api/orders"), &cookies).await;
    assert_all_correct(&replies, &nginx);

    let calls = nginx.user_calls().await;
    assert_eq!(
        calls.len(),
        1,
        "200 concurrent requests with one cookie must make exactly one user-service call; \
         calls per worker pid: {:?}",
        count_by(calls.iter().map(|(pid, _)| pid.as_str()))
    );

    let statuses = count_by(replies.iter().map(|r| r.identity.as_str()));
    assert_eq!(
        statuses.get("MISS").copied(),
        Some(1),
        "exactly one MISS expected; statuses {statuses:?}"
    );
    let others: usize = statuses
        .iter()
        .filter(|(k, _)| k.as_str() == "HIT" || k.as_str() == "COALESCED")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(
        others, 199,
        "every other request must be HIT or COALESCED; statuses {statuses:?}"
    );
    // The user service takes 200 ms and the burst leaves at once over warm connections:
    // requests must have waited on the call in flight, or the lock was not exercised.
    assert!(
        statuses.get("COALESCED").copied().unwrap_or(0) > 0,
        "no request waited on the call in flight, the burst did not overlap it; \
         statuses {statuses:?}"
    );

    // Both workers took part, so the single flight held across workers.
    let lines = nginx.gateway_lines();
    let api: Vec<_> = lines.iter().filter(|l| l.1 == "sf-alice").collect();
    assert_eq!(api.len(), 200, "gateway.log lines for the burst");
    let pids: BTreeSet<&str> = api.iter().map(|l| l.0.as_str()).collect();
    assert_eq!(
        pids.len(),
        2,
        "the burst should reach both workers (listen reuseport); pids {pids:?}"
    );
    let coalesced_pids: BTreeSet<&str> = api
        .iter()
        .filter(|l| l.2 == "COALESCED")
        .map(|l| l.0.as_str())
        .collect();
    eprintln!(
        "single flight: statuses {statuses:?}, workers {pids:?}, workers that coalesced \
         {coalesced_pids:?}"
    );
    nginx.assert_clean_error_log();
}

/// 200 simultaneous requests over 20 new credentials (10 each, interleaved): exactly one
/// call per credential.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_cookies_200_concurrent_requests_make_twenty_calls() {
    let nginx = Nginx::start(
        "twenty-keys",
        Options {
            lock: true,
            user_delay: Some(0.05),
            zone_size: "1m",
            ..Options::default()
        },
    );
    let client = client();
    warm_up(&client, &nginx, 200).await;

    let cookies: Vec<String> = (0..200).map(|i| format!("tk-user{:02}", i % 20)).collect();
    let replies = burst(&client, &nginx.url("/api/orders"), &cookies).await;
    assert_all_correct(&replies, &nginx);

    let calls = nginx.user_calls().await;
    let per_cookie = count_by(calls.iter().map(|(_, c)| c.as_str()));
    assert_eq!(
        calls.len(),
        20,
        "20 cookies must make exactly 20 user-service calls; per cookie: {per_cookie:?}"
    );
    assert_eq!(
        per_cookie.len(),
        20,
        "one call for each cookie: {per_cookie:?}"
    );
    assert!(
        per_cookie.values().all(|&n| n == 1),
        "one call for each cookie: {per_cookie:?}"
    );

    for i in 0..20 {
        let cookie = format!("tk-user{i:02}");
        let st = count_by(
            replies
                .iter()
                .filter(|r| r.cookie == cookie)
                .map(|r| r.identity.as_str()),
        );
        assert_eq!(
            st.get("MISS").copied(),
            Some(1),
            "{cookie}: statuses {st:?}"
        );
        let others =
            st.get("HIT").copied().unwrap_or(0) + st.get("COALESCED").copied().unwrap_or(0);
        assert_eq!(others, 9, "{cookie}: statuses {st:?}");
    }
    nginx.assert_clean_error_log();
}

/// A 1 MB zone under 50,000 distinct credentials: every answer stays correct, the
/// oldest entries are evicted (asked again, they call the user service again), the
/// newest is still a hit, the zone says once that it is full, and nothing crashes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_zone_evicts_oldest_and_keeps_answering() {
    const KEYS: usize = 50_000;
    const IN_FLIGHT: usize = 64;
    let nginx = Nginx::start(
        "full-zone",
        Options {
            lock: true,
            user_delay: None,
            zone_size: "1m",
            ..Options::default()
        },
    );
    let client = client();
    let key = |i: usize| format!("fz{i:05}");
    let url = nginx.url("/api/orders");

    let started = Instant::now();
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..IN_FLIGHT)
        .map(|_| {
            let (client, url, next) = (client.clone(), url.clone(), next.clone());
            tokio::spawn(async move {
                // (a few wrong replies, how many were wrong, $identity_status counts)
                let mut wrong = Vec::new();
                let mut wrong_count = 0usize;
                let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= KEYS {
                        break;
                    }
                    match get(&client, &url, &key(i)).await {
                        Ok(r) => {
                            *statuses.entry(r.identity.clone()).or_insert(0) += 1;
                            if !r.is_correct() {
                                wrong_count += 1;
                                if wrong.len() < 5 {
                                    wrong.push(format!("{r:?}"));
                                }
                            }
                        }
                        Err(e) => {
                            wrong_count += 1;
                            if wrong.len() < 5 {
                                wrong.push(e);
                            }
                        }
                    }
                }
                (wrong, wrong_count, statuses)
            })
        })
        .collect();
    let mut wrong = Vec::new();
    let mut wrong_count = 0;
    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for t in tasks {
        let (w, n, st) = t.await.expect("load task");
        wrong.extend(w);
        wrong_count += n;
        for (k, v) in st {
            *statuses.entry(k).or_insert(0) += v;
        }
    }
    eprintln!(
        "full zone: {KEYS} keys in {:.1} s, statuses {statuses:?}",
        started.elapsed().as_secs_f64()
    );
    assert_eq!(
        wrong_count,
        0,
        "every request must get 200 with its own id; e.g. {wrong:#?}\nerror.log:\n{}",
        tail(&nginx.error_log(), 30)
    );
    assert_eq!(
        statuses.get("MISS").copied(),
        Some(KEYS),
        "each new key is a MISS: {statuses:?}"
    );

    let calls = nginx.user_calls().await.len();
    assert_eq!(calls, KEYS, "one user-service call per distinct key");

    // The newest key is cached.
    let newest = key(KEYS - 1);
    let r = get(&client, &url, &newest).await.expect("newest key");
    assert!(r.is_correct(), "newest key: {r:?}");
    assert_eq!(
        r.identity, "HIT",
        "the most recent key must still be cached: {r:?}"
    );
    assert_eq!(
        nginx.user_calls().await.len(),
        calls,
        "a hit on the most recent key must not call the user service"
    );

    // The oldest keys were evicted: asking again calls again.
    let oldest: Vec<String> = (0..100).map(key).collect();
    let replies = burst(&client, &url, &oldest).await;
    assert_all_correct(&replies, &nginx);
    let after = nginx.user_calls().await.len();
    let st = count_by(replies.iter().map(|r| r.identity.as_str()));
    assert_eq!(
        after - calls,
        100,
        "the 100 oldest keys should have been evicted from a full 1m zone and call again; \
         statuses {st:?}"
    );
    assert_eq!(st.get("MISS").copied(), Some(100), "statuses {st:?}");

    // And the newest is still there after those 100 insertions.
    let r = get(&client, &url, &newest).await.expect("newest key");
    assert_eq!(
        r.identity, "HIT",
        "newest key after re-inserting the oldest: {r:?}"
    );
    assert_eq!(nginx.user_calls().await.len(), after);

    let log = nginx.error_log();
    let full = log
        .lines()
        .filter(|l| l.contains("identity cache zone \"users\" is full"))
        .count();
    assert!(
        full >= 1,
        "error.log should say once that zone \"users\" is full; tail:\n{}",
        tail(&log, 30)
    );
    // At most once a minute per zone (the test lasts well under two minutes).
    assert!(
        full <= 2,
        "the full-zone warning is rate limited, got {full} lines"
    );
    let evictions = metric(
        &nginx,
        r#"nginx_identity_cache_evictions_total{zone="users"}"#,
    )
    .await;
    assert!(evictions >= 100, "evictions counted: {evictions}");
    nginx.assert_clean_error_log();
}

/// With `identity_cache_lock off`, a burst on one new credential makes several calls:
/// the single flight of the other tests is the lock's doing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_lock_concurrent_requests_make_several_calls() {
    let nginx = Nginx::start(
        "no-lock",
        Options {
            lock: false,
            user_delay: Some(0.2),
            zone_size: "1m",
            ..Options::default()
        },
    );
    let client = client();
    warm_up(&client, &nginx, 50).await;

    let cookies = vec!["nl-bob".to_string(); 50];
    let replies = burst(&client, &nginx.url("/api/orders"), &cookies).await;
    assert_all_correct(&replies, &nginx);

    let calls = nginx.user_calls().await;
    let statuses = count_by(replies.iter().map(|r| r.identity.as_str()));
    eprintln!("no lock: {} calls, statuses {statuses:?}", calls.len());
    assert!(
        calls.len() > 1,
        "without identity_cache_lock, 50 simultaneous requests should each call; got \
         {} call(s), statuses {statuses:?}",
        calls.len()
    );
    assert_eq!(
        statuses.get("MISS").copied().unwrap_or(0),
        calls.len(),
        "one MISS per call: {statuses:?}"
    );
    assert_eq!(
        statuses.get("COALESCED"),
        None,
        "nothing waits without the lock: {statuses:?}"
    );
    nginx.assert_clean_error_log();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_cached_entries() {
    let nginx = Nginx::start(
        "reload",
        Options {
            lock: true,
            user_delay: None,
            zone_size: "1m",
            ..Options::default()
        },
    );
    let cookies: Vec<String> = (0..20).map(|i| format!("rl-{i}")).collect();
    let client = client();
    for cookie in &cookies {
        let reply = get(&client, &nginx.url("/api/orders"), cookie)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(reply.is_correct(), "{reply:?}");
        assert_eq!(reply.identity, "MISS", "{reply:?}");
    }
    assert_eq!(nginx.user_calls().await.len(), 20);
    let miss = r#"nginx_identity_requests_total{status="MISS"}"#;
    let hit = r#"nginx_identity_requests_total{status="HIT"}"#;
    assert_eq!(metric(&nginx, miss).await, 20);

    let status = Command::new(&nginx.binary)
        .arg("-p")
        .arg(&nginx.prefix)
        .arg("-c")
        .arg(&nginx.conf)
        .args(["-s", "reload"])
        .status()
        .expect("nginx -s reload runs");
    assert!(status.success(), "nginx -s reload: {status}");
    // The new workers are up once the master logs it; the old ones then go.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !nginx.error_log().contains("reconfiguring") {
        assert!(Instant::now() < deadline, "no reload in the error log");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // New connections, so the answers come from the new workers.
    let client = self::client();
    for cookie in &cookies {
        let reply = get(&client, &nginx.url("/api/orders"), cookie)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(reply.is_correct(), "{reply:?}");
        assert_eq!(reply.identity, "HIT", "entry lost in the reload: {reply:?}");
    }
    // The counters are in a zone the reload kept: the new workers added to them.
    assert_eq!(
        metric(&nginx, miss).await,
        20,
        "MISS count after the reload"
    );
    assert_eq!(metric(&nginx, hit).await, 20, "HIT count after the reload");
    assert_eq!(
        nginx.user_calls().await.len(),
        20,
        "the reload made the cache call again"
    );
    nginx.assert_clean_error_log();
}

// ---------------------------------------------------------------------------------------
// Dead workers

async fn kill9(pid: u32) {
    let _ = tokio::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .await;
}

/// Waits until `/ping` answers (the master has replaced killed workers); panics with the
/// error log's tail after `secs`.
async fn wait_answering(nginx: &Nginx, secs: u64, what: &str) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client");
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Ok(resp) = client.get(nginx.url("/ping")).send().await {
            if resp.status().as_u16() == 200 {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the gateway does not answer {secs} s after {what}; error.log:\n{}",
            tail(&nginx.error_log(), 30)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Workers are SIGKILLed again and again (every 50 ms, for WORKER_KILL_SECONDS, 5 by
/// default) under load with 20,000 credentials and a zone small enough to evict all the
/// time, so that some die holding the zone's lock or halfway through changing it.
/// Meanwhile no 200 may carry another credential's identity; afterwards every request is
/// answered, correctly, within 2 s.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_workers_never_stop_the_gateway() {
    use std::sync::atomic::AtomicBool;
    let nginx = Nginx::start(
        "worker-kill",
        Options {
            zone_size: "256k",
            ..Options::default()
        },
    );
    let master = nginx.master_pid.expect("master pid");
    let seconds: u64 = std::env::var("WORKER_KILL_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, wrong) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let url = nginx.url("/api/orders");
    let load: Vec<_> = (0..48usize)
        .map(|i| {
            let (stop, answered, wrong, url) =
                (stop.clone(), answered.clone(), wrong.clone(), url.clone());
            tokio::spawn(async move {
                let client = reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .build()
                    .expect("reqwest client");
                let mut j = 0usize;
                let mut wrong_example = None;
                while !stop.load(Ordering::Relaxed) {
                    let cookie = format!("wk-{}", (i * 7919 + j * 104_729) % 20_000);
                    j += 1;
                    // A request on a worker that is killed fails; only a wrong 200 counts.
                    if let Ok(reply) = get(&client, &url, &cookie).await {
                        if reply.status == 200 && !reply.is_correct() {
                            wrong.fetch_add(1, Ordering::Relaxed);
                            wrong_example.get_or_insert(reply);
                        } else if reply.is_correct() {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
                wrong_example
            })
        })
        .collect();

    let deadline = Instant::now() + Duration::from_secs(seconds);
    let mut kills = 0usize;
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let workers = worker_pids(master);
        if workers.is_empty() {
            continue;
        }
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos() as usize)
            .unwrap_or(0);
        kill9(workers[nanos % workers.len()]).await;
        kills += 1;
    }
    stop.store(true, Ordering::Relaxed);
    let mut examples = Vec::new();
    for t in load {
        if let Some(r) = t.await.expect("load task") {
            examples.push(r);
        }
    }
    let during = answered.load(Ordering::Relaxed);
    assert_eq!(
        wrong.load(Ordering::Relaxed),
        0,
        "200 replies with another credential's identity, e.g. {examples:?}"
    );

    wait_answering(&nginx, 10, &format!("{kills} worker kills")).await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("reqwest client");
    for k in 0..200 {
        let cookie = format!("wk-after-{k}");
        let reply = get(&client, &url, &cookie).await.unwrap_or_else(|e| {
            panic!(
                "not answered within 2 s after {kills} worker kills: {e}; error.log:\n{}",
                tail(&nginx.error_log(), 30)
            )
        });
        assert!(reply.is_correct(), "after the kills: {reply:?}");
    }
    let rebuilt = nginx.error_log().matches("emptied it").count();
    eprintln!(
        "worker kill: {kills} kills in {seconds} s, {during} correct answers meanwhile, \
         zone rebuilt {rebuilt} times, 200 of 200 correct afterwards"
    );
}

/// The single-flight mark of a worker that dies while asking the user service expires:
/// the next request for that credential waits at most identity_cache_lock_timeout, then
/// asks itself; its answer is cached as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_workers_single_flight_mark_expires() {
    use std::io::{BufRead, BufReader, Write};
    use std::sync::mpsc;

    // The user service: holds the first call open forever, answers the others.
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind user service");
    let user_port = listener.local_addr().expect("local_addr").port();
    let calls = Arc::new(AtomicUsize::new(0));
    let (first_tx, first_rx) = mpsc::channel::<()>();
    {
        let calls = calls.clone();
        std::thread::spawn(move || {
            let mut held = Vec::new();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().expect("clone stream"));
                let mut cookie = String::new();
                let mut line = String::new();
                while reader.read_line(&mut line).map(|n| n > 0).unwrap_or(false) {
                    if line == "\r\n" {
                        break;
                    }
                    let lower = line.to_ascii_lowercase();
                    if let Some(v) = lower.strip_prefix("cookie:") {
                        if let Some(s) = v.trim().strip_prefix("session=") {
                            cookie = s.trim().to_string();
                        }
                    }
                    line.clear();
                }
                if calls.fetch_add(1, Ordering::SeqCst) == 0 {
                    let _ = first_tx.send(());
                    held.push(stream);
                    continue;
                }
                let body = format!("{{\"id\":\"{cookie}\"}}");
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                     Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
    }

    let nginx = Nginx::start(
        "dead-mark",
        Options {
            lock_timeout: "2s",
            external_user: Some(user_port),
            ..Options::default()
        },
    );
    let master = nginx.master_pid.expect("master pid");
    let url = nginx.url("/api/orders");

    // A worker takes the credential's single-flight mark and calls the user service...
    let first = {
        let url = url.clone();
        tokio::spawn(async move { get(&client(), &url, "dead-1").await })
    };
    tokio::task::spawn_blocking(move || first_rx.recv_timeout(Duration::from_secs(10)))
        .await
        .expect("join")
        .expect("the first request never reached the user service");
    // ...and dies with it (both workers, so whichever it was).
    for pid in worker_pids(master) {
        kill9(pid).await;
    }
    let _ = first.await;
    wait_answering(&nginx, 10, "killing both workers").await;

    let client = client();
    let second = tokio::time::timeout(Duration::from_secs(20), get(&client, &url, "dead-1"))
        .await
        .expect("the request behind a dead worker's mark is never answered")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(second.is_correct(), "{second:?}");
    let third = get(&client, &url, "dead-1")
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(third.is_correct(), "{third:?}");
    assert_eq!(
        third.identity, "HIT",
        "the answer after the dead mark is cached"
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "user-service calls");
}
