//! The Redis links of `identity_cache_sync`, as tasks on nginx's event loop
//! (`ngx::async_`): requests never wait for them.
//!
//! - One subscriber per synced zone per gateway, in worker 0: it subscribes to the zone's
//!   channel, loads the revocations still in force, then hands every message to
//!   `fleet::on_message` and renews the zone's lease (`fleet::on_link_alive`) on each
//!   PONG of its once-a-second PING. A lost link is retried with a backoff.
//! - One publisher per synced zone per worker, started by the first `publish`: it sends
//!   what the worker queued (purges, revocations) on a connection it keeps (closed when
//!   Redis closes it or the worker shuts down), and retries what it could not send.

use core::future::poll_fn;
use core::task::{Poll, Waker};
use std::cell::RefCell;
use std::collections::VecDeque;

use identity_core::backoff::Backoff;
use identity_core::resp::Reply;
use ngx::ffi::{ngx_cycle_t, ngx_int_t, NGX_LOG_NOTICE, NGX_LOG_WARN};
use ngx::ngx_log_error;

use crate::fleet;
use crate::fleet_conf::SyncConf;
use crate::module::cycle_main_conf;
use crate::ngx_codes::NGX_OK;
use crate::redis_conn::{LinkError, RedisConn};

/// What a worker tells the fleet.
pub enum Outgoing {
    /// An encoded purge message.
    Purge(Vec<u8>),
    /// An encoded revocation, kept in Redis until `exp` and published.
    Revoke { member: Vec<u8>, exp: u64 },
}

/// The most messages a worker queues for one link; the oldest go first.
const QUEUE_LIMIT: usize = 1024;
const PING_EVERY_MS: u64 = 1000;
/// No PONG for this long: the link is lost.
const PONG_DEADLINE_MS: u64 = 3000;

#[derive(Default)]
struct Publisher {
    queue: VecDeque<Outgoing>,
    waker: Option<Waker>,
    running: bool,
}

thread_local! {
    /// This worker's publishers, by `SyncConf` index.
    static PUBLISHERS: RefCell<Vec<Publisher>> = const { RefCell::new(Vec::new()) };
}

fn log() -> *mut ngx::ffi::ngx_log_t {
    ngx::log::ngx_cycle_log().as_ptr()
}

fn now_ms() -> u64 {
    // SAFETY: nginx updates ngx_current_msec on this thread; a plain read.
    unsafe { ngx::ffi::ngx_current_msec as u64 }
}

fn now_secs() -> u64 {
    u64::try_from(ngx::ffi::ngx_time()).unwrap_or(0)
}

fn exiting() -> bool {
    // SAFETY: plain reads of flags nginx sets from its signal handlers.
    unsafe { ngx::ffi::ngx_exiting != 0 || ngx::ffi::ngx_terminate != 0 || ngx::ffi::ngx_quit != 0 }
}

fn sync_conf<'a>(index: usize) -> Option<&'a SyncConf> {
    cycle_main_conf()?.syncs.get(index)
}

/// The module's `init_process`: the metrics' zone, then, in worker 0, one subscriber per
/// synced zone.
pub extern "C" fn init_process(cycle: *mut ngx_cycle_t) -> ngx_int_t {
    let rc = crate::metrics::init_process(cycle);
    if rc != NGX_OK {
        return rc;
    }
    let Some(main) = cycle_main_conf() else {
        return NGX_OK;
    };
    // SAFETY: plain reads of the process's kind and worker number, set before
    // init_process.
    let (process, worker) = unsafe { (ngx::ffi::ngx_process, ngx::ffi::ngx_worker) };
    // The cache manager and loader run init_process too, with ngx_worker left at 0: they
    // must not subscribe (one subscription per gateway).
    let serves = process == ngx::ffi::NGX_PROCESS_WORKER as ngx::ffi::ngx_uint_t
        || process == ngx::ffi::NGX_PROCESS_SINGLE as ngx::ffi::ngx_uint_t;
    if !serves || worker != 0 {
        return NGX_OK;
    }
    for index in 0..main.syncs.len() {
        ngx::async_::spawn(subscriber(index)).detach();
    }
    NGX_OK
}

/// Queues `out` for the fleet; returns at once (the publisher's I/O runs later, off the
/// request path).
pub fn publish(index: usize, out: Outgoing) {
    let (start, waker) = PUBLISHERS.with(|publishers| {
        let Ok(mut publishers) = publishers.try_borrow_mut() else {
            return (false, None);
        };
        if publishers.len() <= index {
            publishers.resize_with(index + 1, Publisher::default);
        }
        let p = &mut publishers[index];
        if p.queue.len() >= QUEUE_LIMIT {
            p.queue.pop_front();
            ngx_log_error!(
                NGX_LOG_WARN,
                log(),
                "identity: the Redis link's queue is full, dropped its oldest message"
            );
        }
        p.queue.push_back(out);
        (!core::mem::replace(&mut p.running, true), p.waker.take())
    });
    // Both outside the borrow: a wake (and a spawn) runs the task at once, and the task
    // reads the queue.
    if start {
        ngx::async_::spawn(publisher(index)).detach();
    }
    if let Some(waker) = waker {
        waker.wake();
    }
}

/// Lets the event loop run once before going on: the publisher's task is woken (and
/// spawned) from a request handler, whose request must not wait for its connect or send.
async fn yield_now() {
    let mut yielded = false;
    poll_fn(|cx| {
        if yielded {
            return Poll::Ready(());
        }
        yielded = true;
        // Woken while running: ngx::async_ posts it for the next round of the event loop.
        cx.waker().wake_by_ref();
        Poll::Pending
    })
    .await
}

/// Logs the link's state when it changes.
struct LinkState<'a> {
    sync: &'a SyncConf,
    up: Option<bool>,
}

impl LinkState<'_> {
    fn up(&mut self) {
        if self.up == Some(false) {
            ngx_log_error!(
                NGX_LOG_NOTICE,
                log(),
                "identity: Redis link of zone \"{}\" to {} is back",
                self.sync.zone_name,
                self.sync.server
            );
        }
        self.up = Some(true);
    }

    fn down(&mut self, why: &LinkError) {
        if self.up != Some(false) {
            ngx_log_error!(
                NGX_LOG_WARN,
                log(),
                "identity: Redis link of zone \"{}\" to {} is down ({why}); serving from the \
                 cache, new entries kept at most {}s, retrying",
                self.sync.zone_name,
                self.sync.server,
                self.sync.offline_ttl
            );
        }
        self.up = Some(false);
    }
}

async fn subscriber(index: usize) {
    let Some(sync) = sync_conf(index) else { return };
    fleet::on_link_down(sync);
    let mut backoff = Backoff::default();
    let mut state = LinkState { sync, up: None };
    while !exiting() {
        let result = subscribed(sync, &mut state, &mut backoff).await;
        if exiting() {
            return;
        }
        fleet::on_link_down(sync);
        if let Err(e) = result {
            state.down(&e);
        }
        ngx::async_::sleep(backoff.next_delay()).await;
    }
}

/// One subscription, from connecting until the link is lost.
async fn subscribed(
    sync: &SyncConf,
    state: &mut LinkState<'_>,
    backoff: &mut Backoff,
) -> Result<(), LinkError> {
    let mut conn = RedisConn::connect(&sync.addr).await?;
    conn.prepare(sync.password.as_deref(), sync.db).await?;
    conn.send(&identity_core::resp::command(&[
        b"SUBSCRIBE",
        sync.channel.as_bytes(),
    ]))
    .await?;
    match conn.reply().await? {
        reply if matches!(reply.push(), Some((b"subscribe", _))) => {}
        Reply::Error(_) => return Err(LinkError::Refused),
        _ => return Err(LinkError::Unexpected),
    }
    // Subscribed first, loaded second: a revocation published in between is both
    // delivered and loaded, never neither.
    load_revocations(sync).await?;
    fleet::on_link_up(sync);
    backoff.reset();
    state.up();
    let (mut last_pong, mut last_ping) = (now_ms(), now_ms());
    loop {
        if exiting() {
            return Ok(());
        }
        if let Some(reply) = conn.reply_within(PING_EVERY_MS as usize).await? {
            match reply.push() {
                Some((b"message", [_, payload])) => {
                    if let Some(payload) = payload.bytes() {
                        fleet::on_message(sync, payload);
                    }
                }
                Some((b"pong", _)) => {
                    last_pong = now_ms();
                    fleet::on_link_alive(sync);
                }
                _ => {}
            }
        }
        let now = now_ms();
        if now.saturating_sub(last_pong) > PONG_DEADLINE_MS {
            return Err(LinkError::Timeout);
        }
        if now.saturating_sub(last_ping) >= PING_EVERY_MS {
            conn.send(&identity_core::resp::command(&[b"PING"])).await?;
            last_ping = now;
        }
    }
}

/// Applies every revocation still in force that the fleet keeps in Redis.
async fn load_revocations(sync: &SyncConf) -> Result<(), LinkError> {
    let mut conn = RedisConn::connect(&sync.addr).await?;
    conn.prepare(sync.password.as_deref(), sync.db).await?;
    let now = now_secs().to_string();
    let key = sync.revocations_key();
    let reply = conn
        .call(&[b"ZRANGEBYSCORE", key.as_bytes(), now.as_bytes(), b"+inf"])
        .await?;
    let Reply::Array(Some(members)) = reply else {
        return Err(LinkError::Unexpected);
    };
    for member in members.iter().filter_map(Reply::bytes) {
        fleet::on_message(sync, member);
    }
    Ok(())
}

/// Waits until the worker queued something for link `index`, meanwhile dropping `conn`
/// if it becomes unusable (closed by Redis, or by nginx in a worker shutting down).
async fn queued(index: usize, conn: &mut Option<RedisConn>) -> Option<Outgoing> {
    poll_fn(|cx| {
        let next = PUBLISHERS.with(|publishers| {
            let Ok(mut publishers) = publishers.try_borrow_mut() else {
                return Poll::Ready(None);
            };
            let Some(p) = publishers.get_mut(index) else {
                return Poll::Ready(None);
            };
            match p.queue.pop_front() {
                Some(out) => Poll::Ready(Some(out)),
                None if exiting() => Poll::Ready(None),
                None => {
                    p.waker = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        });
        if next.is_pending()
            && conn
                .as_mut()
                .is_some_and(|c| c.poll_unusable(cx).is_ready())
        {
            *conn = None;
        }
        next
    })
    .await
}

fn requeue(index: usize, out: Outgoing) {
    PUBLISHERS.with(|publishers| {
        if let Ok(mut publishers) = publishers.try_borrow_mut() {
            if let Some(p) = publishers.get_mut(index) {
                p.queue.push_front(out);
            }
        }
    });
}

async fn publisher(index: usize) {
    let Some(sync) = sync_conf(index) else { return };
    let mut backoff = Backoff::default();
    let mut conn: Option<RedisConn> = None;
    // Logged once per change, as the subscriber does: a retry every few seconds while
    // Redis is down is not news.
    let mut failing = false;
    while let Some(out) = queued(index, &mut conn).await {
        // Woken (or spawned) by a request's `publish`, the task runs inside that request's
        // handler. Without a connection, its connect waits for the next round of the event
        // loop. With one, the send (a write that never blocks) goes at once: an open
        // connection must not sit unwatched in a posted event while a shutting-down worker
        // checks for open sockets.
        if conn.is_none() {
            yield_now().await;
        }
        if exiting() {
            requeue(index, out);
            break;
        }
        let sent = send(sync, &mut conn, &out).await;
        if let Err(e) = sent {
            conn = None;
            requeue(index, out);
            if !core::mem::replace(&mut failing, true) {
                ngx_log_error!(
                    NGX_LOG_WARN,
                    log(),
                    "identity: could not publish to Redis for zone \"{}\" ({e}); queued, \
                     retrying",
                    sync.zone_name
                );
            }
            ngx::async_::sleep(backoff.next_delay()).await;
            continue;
        }
        if core::mem::replace(&mut failing, false) {
            ngx_log_error!(
                NGX_LOG_NOTICE,
                log(),
                "identity: publishing to Redis for zone \"{}\" again",
                sync.zone_name
            );
        }
        backoff.reset();
    }
    PUBLISHERS.with(|publishers| {
        if let Ok(mut publishers) = publishers.try_borrow_mut() {
            if let Some(p) = publishers.get_mut(index) {
                p.running = false;
            }
        }
    });
}

async fn send(
    sync: &SyncConf,
    conn: &mut Option<RedisConn>,
    out: &Outgoing,
) -> Result<(), LinkError> {
    let c = match conn {
        Some(c) => c,
        None => {
            let mut c = RedisConn::connect(&sync.addr).await?;
            c.prepare(sync.password.as_deref(), sync.db).await?;
            conn.insert(c)
        }
    };
    let channel = sync.channel.as_bytes();
    match out {
        Outgoing::Purge(payload) => {
            c.call(&[b"PUBLISH", channel, payload]).await?;
        }
        Outgoing::Revoke { member, exp } => {
            let key = sync.revocations_key();
            let (exp, now) = (exp.to_string(), now_secs().to_string());
            c.call(&[b"ZADD", key.as_bytes(), exp.as_bytes(), member])
                .await?;
            c.call(&[b"ZREMRANGEBYSCORE", key.as_bytes(), b"-inf", now.as_bytes()])
                .await?;
            c.call(&[b"PUBLISH", channel, member]).await?;
        }
    }
    Ok(())
}
