//! A connection to Redis on nginx's event loop: an nginx peer connection whose read and
//! write events wake the future (`ngx::async_`) that uses it, and RESP2 framing
//! (`core::resp`) on top. Nothing here blocks a worker.
//!
//! The connection is marked idle, so a worker that exits gracefully (a reload) closes it
//! through `ngx_close_idle_connections`, and its timers are cancelable, so it never keeps
//! such a worker alive.

use core::ffi::c_void;
use core::future::poll_fn;
use core::ptr;
use core::task::{Context, Poll, Waker};
use std::net::SocketAddr;

use identity_core::resp::{self, Reply, RespError};
use nginx_sys::{ngx_add_timer, ngx_del_timer};
use ngx::ffi::{
    ngx_close_connection, ngx_connection_t, ngx_create_pool, ngx_destroy_pool,
    ngx_event_connect_peer, ngx_event_get_peer, ngx_event_t, ngx_handle_read_event,
    ngx_handle_write_event, ngx_peer_connection_t, ngx_pool_t, ngx_str_t, sockaddr, sockaddr_in,
    sockaddr_in6, socklen_t, NGX_AGAIN, NGX_OK,
};

/// How long connecting, and waiting for a command's reply, may take.
pub const IO_TIMEOUT_MS: usize = 3000;

/// The most unparsed bytes kept: a reply beyond this (a revocation load of more than a
/// few hundred thousand entries, or a server that never ends a line) fails the link.
const MAX_BUFFER: usize = 64 << 20;

#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot connect")]
    Connect,
    #[error("timed out")]
    Timeout,
    #[error("connection closed")]
    Closed,
    #[error("{0}")]
    Protocol(#[from] RespError),
    #[error("Redis answered an error")]
    Refused,
    #[error("unexpected reply")]
    Unexpected,
    #[error("out of memory")]
    NoMemory,
}

/// The part nginx's event handlers reach through `c->data`: boxed, so it does not move.
struct Wakers {
    read: Option<Waker>,
    write: Option<Waker>,
}

pub struct RedisConn {
    pool: *mut ngx_pool_t,
    pc: Box<ngx_peer_connection_t>,
    wakers: Box<Wakers>,
    /// Bytes read and not yet parsed.
    buffer: Vec<u8>,
    /// The address, kept alive for the peer connection.
    _addr: Box<SockAddr>,
    _name: Box<ngx_str_t>,
}

#[repr(C)]
union SockAddr {
    v4: sockaddr_in,
    v6: sockaddr_in6,
}

fn sock_addr(addr: &SocketAddr) -> (Box<SockAddr>, socklen_t) {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: an all-zero sockaddr_in is valid; the fields are set below.
            let mut sin: sockaddr_in = unsafe { core::mem::zeroed() };
            sin.sin_family = ngx::ffi::AF_INET as _;
            sin.sin_port = a.port().to_be();
            sin.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
            (
                Box::new(SockAddr { v4: sin }),
                size_of::<sockaddr_in>() as socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            // SAFETY: an all-zero sockaddr_in6 is valid; the fields are set below.
            let mut sin6: sockaddr_in6 = unsafe { core::mem::zeroed() };
            sin6.sin6_family = ngx::ffi::AF_INET6 as _;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_addr.__in6_u.__u6_addr8 = a.ip().octets();
            sin6.sin6_scope_id = a.scope_id();
            (
                Box::new(SockAddr { v6: sin6 }),
                size_of::<sockaddr_in6>() as socklen_t,
            )
        }
    }
}

extern "C" fn read_handler(ev: *mut ngx_event_t) {
    // SAFETY: nginx passes the connection's read event; its data is the connection, whose
    // data is the Wakers box of the RedisConn that owns it (cleared before it is freed).
    let (read, write) = unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        match ((*c).data as *mut Wakers).as_mut() {
            None => (None, None),
            // nginx wants the connection closed (a worker shutting down): whatever the
            // task waits for, it must run, see `close` and drop the connection.
            Some(w) if (*c).close() != 0 => (w.read.take(), w.write.take()),
            Some(w) => (w.read.take(), None),
        }
    };
    // Woken only once the connection and the Wakers box are no longer touched here:
    // a wake may run the task at once, and the task may drop (and free) both.
    for waker in [read, write].into_iter().flatten() {
        waker.wake();
    }
}

extern "C" fn write_handler(ev: *mut ngx_event_t) {
    // SAFETY: as in read_handler, for the write event.
    let write = unsafe {
        let c = (*ev).data as *mut ngx_connection_t;
        ((*c).data as *mut Wakers)
            .as_mut()
            .and_then(|w| w.write.take())
    };
    // As in read_handler: the wake may free the connection, so it comes last.
    if let Some(waker) = write {
        waker.wake();
    }
}

fn cycle_log() -> *mut ngx::ffi::ngx_log_t {
    ngx::log::ngx_cycle_log().as_ptr()
}

impl RedisConn {
    /// Connects to `addr` (at most `IO_TIMEOUT_MS`).
    pub async fn connect(addr: &SocketAddr) -> Result<RedisConn, LinkError> {
        // SAFETY: the cycle's log lives as long as the worker.
        let pool = unsafe { ngx_create_pool(4096, cycle_log()) };
        if pool.is_null() {
            return Err(LinkError::NoMemory);
        }
        let (sa, socklen) = sock_addr(addr);
        let mut name = Box::new(ngx_str_t {
            len: 5,
            data: c"redis".as_ptr() as *mut u8,
        });
        // SAFETY: an all-zero peer connection is the documented starting state.
        let mut pc: Box<ngx_peer_connection_t> = Box::new(unsafe { core::mem::zeroed() });
        pc.sockaddr = ptr::addr_of!(*sa) as *mut sockaddr;
        pc.socklen = socklen;
        pc.name = ptr::addr_of_mut!(*name);
        pc.get = Some(ngx_event_get_peer);
        pc.log = cycle_log();
        pc.set_log_error(ngx::ffi::ngx_connection_log_error_e_NGX_ERROR_INFO);
        let mut conn = RedisConn {
            pool,
            pc,
            wakers: Box::new(Wakers {
                read: None,
                write: None,
            }),
            buffer: Vec::new(),
            _addr: sa,
            _name: name,
        };
        // SAFETY: pc is filled in as ngx_event_connect_peer needs it.
        let rc = unsafe { ngx_event_connect_peer(&mut *conn.pc) };
        let c = conn.pc.connection;
        if c.is_null() || (rc != NGX_OK as isize && rc != NGX_AGAIN as isize) {
            return Err(LinkError::Connect);
        }
        // SAFETY: c is the live connection just made; its events are its own.
        unsafe {
            (*c).data = ptr::addr_of_mut!(*conn.wakers) as *mut c_void;
            (*c).pool = conn.pool;
            (*c).log = cycle_log();
            (*c).set_idle(1);
            (*(*c).read).handler = Some(read_handler);
            (*(*c).write).handler = Some(write_handler);
            (*(*c).read).log = cycle_log();
            (*(*c).write).log = cycle_log();
            (*(*c).read).set_cancelable(1);
            (*(*c).write).set_cancelable(1);
        }
        if rc == NGX_AGAIN as isize {
            conn.wait_writable().await?;
            conn.check_connected()?;
        }
        Ok(conn)
    }

    fn connection(&self) -> Result<*mut ngx_connection_t, LinkError> {
        let c = self.pc.connection;
        // SAFETY: a non-null connection is live until this RedisConn closes it; `close`
        // is set by nginx when it wants it closed (a worker shutting down).
        if c.is_null() || unsafe { (*c).close() } != 0 {
            return Err(LinkError::Closed);
        }
        Ok(c)
    }

    fn check_connected(&self) -> Result<(), LinkError> {
        let c = self.connection()?;
        let mut err: i32 = 0;
        let mut len = size_of::<i32>() as socklen_t;
        // SAFETY: a plain getsockopt on the connection's socket into a local.
        let rc = unsafe {
            ngx::ffi::getsockopt(
                (*c).fd,
                ngx::ffi::SOL_SOCKET as i32,
                ngx::ffi::SO_ERROR as i32,
                ptr::addr_of_mut!(err) as *mut c_void,
                &mut len,
            )
        };
        if rc != 0 || err != 0 {
            return Err(LinkError::Connect);
        }
        Ok(())
    }

    /// Waits until the socket is writable (a connect in progress), at most IO_TIMEOUT_MS.
    async fn wait_writable(&mut self) -> Result<(), LinkError> {
        let c = self.connection()?;
        // SAFETY: the connection's write event, live with it.
        let wev = unsafe { (*c).write };
        // SAFETY: as above.
        unsafe { ngx_add_timer(wev, IO_TIMEOUT_MS) };
        let result = poll_fn(|cx| {
            let Ok(c) = self.connection() else {
                return Poll::Ready(Err(LinkError::Closed));
            };
            // SAFETY: as above.
            let wev = unsafe { &mut *(*c).write };
            if wev.timedout() != 0 {
                return Poll::Ready(Err(LinkError::Timeout));
            }
            if wev.ready() != 0 {
                return Poll::Ready(Ok(()));
            }
            self.wakers.write = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.clear_timer(wev);
        result
    }

    fn clear_timer(&self, ev: *mut ngx_event_t) {
        if self.pc.connection.is_null() {
            return;
        }
        // SAFETY: ev is an event of the live connection.
        unsafe {
            if (*ev).timer_set() != 0 {
                ngx_del_timer(ev);
            }
            (*ev).set_timedout(0);
        }
    }

    /// Sends `bytes` whole.
    pub async fn send(&mut self, bytes: &[u8]) -> Result<(), LinkError> {
        let mut sent = 0;
        let c = self.connection()?;
        // SAFETY: the connection's write event, live with it.
        let wev = unsafe { (*c).write };
        // SAFETY: as above.
        unsafe { ngx_add_timer(wev, IO_TIMEOUT_MS) };
        let result = poll_fn(|cx| loop {
            let Ok(c) = self.connection() else {
                return Poll::Ready(Err(LinkError::Closed));
            };
            // SAFETY: as above.
            if unsafe { (*(*c).write).timedout() } != 0 {
                return Poll::Ready(Err(LinkError::Timeout));
            }
            if sent == bytes.len() {
                return Poll::Ready(Ok(()));
            }
            let rest = &bytes[sent..];
            // SAFETY: send is set on every connection; rest is valid for its length.
            let n =
                unsafe { ((*c).send.unwrap_unchecked())(c, rest.as_ptr() as *mut u8, rest.len()) };
            if n > 0 {
                sent += n as usize;
                continue;
            }
            if n == NGX_AGAIN as isize {
                // SAFETY: as above.
                if unsafe { ngx_handle_write_event((*c).write, 0) } != NGX_OK as isize {
                    return Poll::Ready(Err(LinkError::Closed));
                }
                self.wakers.write = Some(cx.waker().clone());
                return Poll::Pending;
            }
            return Poll::Ready(Err(LinkError::Closed));
        })
        .await;
        self.clear_timer(wev);
        result
    }

    /// The next reply, waiting at most `timeout_ms`: `Ok(None)` when that passed first.
    pub async fn reply_within(&mut self, timeout_ms: usize) -> Result<Option<Reply>, LinkError> {
        if let Some(reply) = self.parsed()? {
            return Ok(Some(reply));
        }
        let c = self.connection()?;
        // SAFETY: the connection's read event, live with it.
        let rev = unsafe { (*c).read };
        // SAFETY: as above.
        unsafe { ngx_add_timer(rev, timeout_ms) };
        let result = poll_fn(|cx| {
            let Ok(c) = self.connection() else {
                return Poll::Ready(Err(LinkError::Closed));
            };
            // SAFETY: as above.
            if unsafe { (*(*c).read).timedout() } != 0 {
                return Poll::Ready(Ok(None));
            }
            // Everything the socket holds is read before parsing: the parser starts from
            // the beginning of the buffer each time, so parsing after every small read
            // would make a long reply (a revocation load) quadratic.
            let ended = loop {
                let mut chunk = [0u8; 16384];
                // SAFETY: recv is set on every connection; chunk is writable for its length.
                let n =
                    unsafe { ((*c).recv.unwrap_unchecked())(c, chunk.as_mut_ptr(), chunk.len()) };
                if n > 0 {
                    self.buffer.extend_from_slice(&chunk[..n as usize]);
                    if self.buffer.len() > MAX_BUFFER {
                        return Poll::Ready(Err(LinkError::Protocol(RespError::TooLarge)));
                    }
                    continue;
                }
                // 0: the peer closed; NGX_ERROR: the socket failed.
                break n != NGX_AGAIN as isize;
            };
            // A reply that arrived whole before the peer closed still counts.
            match self.parsed() {
                Ok(Some(reply)) => return Poll::Ready(Ok(Some(reply))),
                Ok(None) => {}
                Err(e) => return Poll::Ready(Err(e)),
            }
            if ended {
                return Poll::Ready(Err(LinkError::Closed));
            }
            // SAFETY: as above.
            if unsafe { ngx_handle_read_event((*c).read, 0) } != NGX_OK as isize {
                return Poll::Ready(Err(LinkError::Closed));
            }
            self.wakers.read = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        self.clear_timer(rev);
        result
    }

    /// The next reply, at most `IO_TIMEOUT_MS` away.
    pub async fn reply(&mut self) -> Result<Reply, LinkError> {
        self.reply_within(IO_TIMEOUT_MS)
            .await?
            .ok_or(LinkError::Timeout)
    }

    /// For a connection kept unused between commands: `Ready` once it is of no more use
    /// (the server closed it or sent something unasked, the socket failed, or nginx wants
    /// it closed), otherwise `Pending`, the task woken when that changes. No timer: an
    /// unused connection keeps nothing waiting.
    pub fn poll_unusable(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let Ok(c) = self.connection() else {
            return Poll::Ready(());
        };
        let mut byte = [0u8; 1];
        // SAFETY: recv is set on every connection; byte is writable for its length.
        let n = unsafe { ((*c).recv.unwrap_unchecked())(c, byte.as_mut_ptr(), byte.len()) };
        if n != NGX_AGAIN as isize {
            return Poll::Ready(());
        }
        // SAFETY: the connection's read event, live with it.
        if unsafe { ngx_handle_read_event((*c).read, 0) } != NGX_OK as isize {
            return Poll::Ready(());
        }
        self.wakers.read = Some(cx.waker().clone());
        Poll::Pending
    }

    fn parsed(&mut self) -> Result<Option<Reply>, LinkError> {
        match resp::parse(&self.buffer)? {
            Some((reply, used)) => {
                self.buffer.drain(..used);
                Ok(Some(reply))
            }
            None => Ok(None),
        }
    }

    /// Sends a command and reads its reply; an error reply is `Refused`.
    pub async fn call(&mut self, args: &[&[u8]]) -> Result<Reply, LinkError> {
        self.send(&resp::command(args)).await?;
        match self.reply().await? {
            Reply::Error(_) => Err(LinkError::Refused),
            reply => Ok(reply),
        }
    }

    /// AUTH and SELECT, as the link's settings want.
    pub async fn prepare(&mut self, password: Option<&str>, db: u32) -> Result<(), LinkError> {
        if let Some(password) = password {
            self.call(&[b"AUTH", password.as_bytes()]).await?;
        }
        if db != 0 {
            self.call(&[b"SELECT", db.to_string().as_bytes()]).await?;
        }
        Ok(())
    }
}

impl Drop for RedisConn {
    fn drop(&mut self) {
        let c = self.pc.connection;
        if !c.is_null() {
            // SAFETY: the live connection this RedisConn made; its handlers must not reach
            // the Wakers box once it is freed, and closing removes its timers and events.
            unsafe {
                (*c).data = ptr::null_mut();
                ngx_close_connection(c);
            }
            self.pc.connection = ptr::null_mut();
        }
        // SAFETY: the pool this RedisConn created; nothing else uses it.
        unsafe { ngx_destroy_pool(self.pool) };
    }
}
