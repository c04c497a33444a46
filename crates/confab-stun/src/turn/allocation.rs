//! One TURN allocation with its permissions and channels (RFC 8656 §2.2, §9, §12).
//!
//! ```text
//!                    Allocate (authenticated, resources available) -> 200
//!        (none) ----------------------------------------------------------+
//!                                                                         v
//!   +------------------------------ Active <---------+ Refresh(LIFETIME>0) -> 200
//!   |                               |  |   \_________/ CreatePermission, ChannelBind
//!   | Refresh(LIFETIME=0) -> 200    |  |
//!   | or TCP/TLS connection closed  |  | time-to-expiry reaches 0
//!   v                               |  v
//! Deleted <-------------------------+ Expired     (usage record emitted either way)
//!
//!   Permission (per peer IP, port ignored):  Installed --300 s without refresh--> gone
//!   Channel (number <-> peer transport address):
//!       Bound --600 s without ChannelBind--> Expired (number and peer stay locked
//!       for another 300 s, RFC 8656 §12) --> gone
//! ```
//!
//! Permissions and channels are small vectors searched linearly: a client has a handful.
//! Expired entries are invisible at once (every lookup compares with `now`) and are purged
//! when the allocation's timer fires or when new ones are added.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::message::TransactionId;
use crate::turn::FiveTuple;
use crate::turn::auth::Authenticated;

/// Permission lifetime, RFC 8656 §9: 300 seconds.
pub const PERMISSION_LIFETIME: Duration = Duration::from_secs(300);
/// Channel binding lifetime, RFC 8656 §12: 10 minutes.
pub const CHANNEL_LIFETIME: Duration = Duration::from_secs(600);
/// After a channel expires, its number and peer cannot be rebound differently for 5 minutes.
pub const CHANNEL_COOLDOWN: Duration = Duration::from_secs(300);

#[derive(Debug, Clone, Copy)]
pub(crate) struct Permission {
    pub ip: IpAddr,
    pub expires: Instant,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Channel {
    pub number: u16,
    pub peer: SocketAddr,
    pub expires: Instant,
}

/// Why binding a channel was refused (both map to 400, RFC 8656 §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BindConflict {
    NumberInUse,
    PeerInUse,
    TooMany,
}

#[derive(Debug)]
pub(crate) struct Allocation {
    pub five: FiveTuple,
    pub relays: [Option<SocketAddr>; 2],
    pub auth: Authenticated,
    pub user_slot: u32,
    pub created: Instant,
    pub expires: Instant,
    /// Deadline of the earliest timer-heap entry for this allocation.
    pub scheduled: Instant,
    pub allocate_txid: TransactionId,
    pub reservation: Option<[u8; 8]>,
    pub permissions: Vec<Permission>,
    pub channels: Vec<Channel>,
    pub bytes_to_peer: u64,
    pub bytes_from_peer: u64,
    pub packets_to_peer: u64,
    pub packets_from_peer: u64,
}

impl Allocation {
    /// The relay address that serves peers of `ip`'s family.
    pub fn relay_for(&self, ip: IpAddr) -> Option<SocketAddr> {
        self.relays
            .iter()
            .flatten()
            .copied()
            .find(|r| r.is_ipv4() == ip.is_ipv4())
    }

    pub fn has_permission(&self, ip: IpAddr, now: Instant) -> bool {
        self.permissions
            .iter()
            .any(|p| p.ip == ip && p.expires > now)
    }

    pub fn install_permission(&mut self, ip: IpAddr, now: Instant, max: usize) -> bool {
        let expires = now + PERMISSION_LIFETIME;
        if let Some(p) = self.permissions.iter_mut().find(|p| p.ip == ip) {
            p.expires = expires;
            return true;
        }
        self.permissions.retain(|p| p.expires > now);
        if self.permissions.len() >= max {
            return false;
        }
        self.permissions.push(Permission { ip, expires });
        true
    }

    /// Channel bound to `number`, if alive.
    pub fn channel_peer(&self, number: u16, now: Instant) -> Option<SocketAddr> {
        self.channels
            .iter()
            .find(|c| c.number == number && c.expires > now)
            .map(|c| c.peer)
    }

    /// Channel number bound to `peer`, if alive.
    pub fn channel_for_peer(&self, peer: SocketAddr, now: Instant) -> Option<u16> {
        self.channels
            .iter()
            .find(|c| c.peer == peer && c.expires > now)
            .map(|c| c.number)
    }

    pub fn bind_channel(
        &mut self,
        number: u16,
        peer: SocketAddr,
        now: Instant,
        max: usize,
    ) -> Result<(), BindConflict> {
        self.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
        for c in &mut self.channels {
            match (c.number == number, c.peer == peer) {
                (true, true) => {
                    c.expires = now + CHANNEL_LIFETIME;
                    return Ok(());
                }
                (true, false) => return Err(BindConflict::NumberInUse),
                (false, true) => return Err(BindConflict::PeerInUse),
                (false, false) => {}
            }
        }
        if self.channels.len() >= max {
            return Err(BindConflict::TooMany);
        }
        self.channels.push(Channel {
            number,
            peer,
            expires: now + CHANNEL_LIFETIME,
        });
        Ok(())
    }

    pub fn purge(&mut self, now: Instant) {
        self.permissions.retain(|p| p.expires > now);
        self.channels.retain(|c| c.expires + CHANNEL_COOLDOWN > now);
    }
}
