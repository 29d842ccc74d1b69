//! One IPMI-over-LAN session to one BMC over UDP: opened with RAKP (v2.0, RMCP+) or
//! a challenge (v1.5), raised to ADMINISTRATOR, then commands, then closed. Every
//! datagram has its own timeout and is sent again when lost; answers are matched by
//! session, sequence number and command, so a late answer to an earlier try is
//! dropped rather than taken for the next one.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::time::Instant;

use super::wire::{self, AuthType, Keys, Rakp, Rakp2Error, Suite};
use crate::DriverError;

/// How long one datagram waits for its answer, and how often it is sent.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    pub attempt: Duration,
    pub attempts: u32,
}

/// The BMC and how to log in.
#[derive(Debug, Clone)]
pub struct Target {
    pub addr: SocketAddr,
    /// As the operator wrote it, for messages.
    pub name: String,
    pub user: String,
    pub password: String,
}

enum Auth {
    V2 { keys: Keys, console_sid: u32 },
    V15 { auth: AuthType, key: [u8; 16] },
}

/// An open, privileged session.
pub struct Session {
    sock: UdpSocket,
    target: Target,
    timing: Timing,
    auth: Auth,
    /// The session ID the BMC gave us (v2) or the v1.5 session ID.
    bmc_sid: u32,
    /// Our next session sequence number.
    seq: u32,
    rq_seq: u8,
}

/// How an exchange of one datagram ended without an answer.
enum Silence {
    /// Nothing listens at the address (ICMP port unreachable).
    Closed,
    /// No acceptable answer after every try.
    NoAnswer,
}

async fn socket(target: &Target) -> Result<UdpSocket, DriverError> {
    let local: SocketAddr = if target.addr.is_ipv4() { "0.0.0.0:0" } else { "[::]:0" }.parse().expect("literal");
    let sock = UdpSocket::bind(local).await.map_err(|e| DriverError::Protocol(format!("no UDP socket: {e}")))?;
    sock.connect(target.addr).await.map_err(|e| DriverError::Unreachable(format!("BMC {}: {e}", target.name)))?;
    Ok(sock)
}

/// Sends `build(try)` until `accept` takes an answer or the tries run out.
async fn exchange<T>(
    sock: &UdpSocket,
    timing: Timing,
    mut build: impl FnMut() -> Vec<u8>,
    mut accept: impl FnMut(&[u8]) -> Option<T>,
) -> Result<T, Silence> {
    let mut buf = vec![0u8; 2048];
    for _ in 0..timing.attempts.max(1) {
        let packet = build();
        match sock.send(&packet).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(Silence::Closed),
            Err(_) => return Err(Silence::NoAnswer),
        }
        let deadline = Instant::now() + timing.attempt;
        loop {
            match tokio::time::timeout_at(deadline, sock.recv(&mut buf)).await {
                Err(_) => break,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => return Err(Silence::Closed),
                Ok(Err(_)) => break,
                Ok(Ok(n)) => {
                    if let Some(t) = accept(&buf[..n]) {
                        return Ok(t);
                    }
                }
            }
        }
    }
    Err(Silence::NoAnswer)
}

impl Target {
    fn silent(&self, s: Silence, what: &str, timing: Timing, first: bool) -> DriverError {
        let waited = timing.attempt.as_millis() as u64 * u64::from(timing.attempts.max(1));
        match s {
            Silence::Closed => DriverError::Unreachable(format!(
                "BMC {}: nothing listens on that UDP port (check the address and that IPMI over LAN is enabled)",
                self.name
            )),
            Silence::NoAnswer if first => DriverError::Unreachable(format!(
                "BMC {} did not answer {what} ({} tries in {waited} ms): check the address, the network and that \
                 IPMI over LAN is enabled",
                self.name,
                timing.attempts.max(1)
            )),
            Silence::NoAnswer => DriverError::Timeout(waited),
        }
    }
}

impl Session {
    /// Opens an RMCP+ session with `suite`. `Ok(None)`: the BMC does not offer it.
    pub async fn open_v2(target: &Target, timing: Timing, suite: Suite) -> Result<Option<Session>, DriverError> {
        let user = target.user.as_bytes();
        if user.len() > 16 {
            return Err(DriverError::Auth("an IPMI user name is at most 16 bytes".into()));
        }
        let kuid = wire::user_key(&target.password).map_err(DriverError::Auth)?;
        let sock = socket(target).await?;
        let console_sid: u32 = rand::random::<u32>() | 1;
        let tag = rand::random::<u8>();

        let open = wire::open_session_request(tag, console_sid, suite);
        let resp = exchange(
            &sock,
            timing,
            || wire::v2_packet(wire::PAYLOAD_OPEN_SESSION_REQUEST, 0, 0, &open, None),
            |d| {
                let p = wire::parse_v2(d, None).ok()?;
                if p.payload_type != wire::PAYLOAD_OPEN_SESSION_RESPONSE {
                    return None;
                }
                wire::parse_open_session(&p.payload).ok().filter(|o| o.tag == tag)
            },
        )
        .await
        .map_err(|s| target.silent(s, "an RMCP+ open-session request", timing, true))?;
        if resp.status != 0 {
            if wire::is_cipher_refusal(resp.status) {
                return Ok(None);
            }
            return Err(DriverError::Refused(format!(
                "BMC {} refused the session: {}",
                target.name,
                wire::rakp_status_text(resp.status)
            )));
        }
        if !resp.agrees(suite) {
            return Ok(None);
        }
        if resp.console_sid != console_sid {
            return Err(DriverError::Protocol(format!("BMC {} answered for another session", target.name)));
        }

        let rakp = Rakp { suite, console_sid, bmc_sid: resp.bmc_sid, console_random: rand::random(), user, kuid };
        let m1 = rakp.message1(tag.wrapping_add(1));
        let r2 = exchange(
            &sock,
            timing,
            || wire::v2_packet(wire::PAYLOAD_RAKP1, 0, 0, &m1, None),
            |d| {
                let p = wire::parse_v2(d, None).ok()?;
                (p.payload_type == wire::PAYLOAD_RAKP2 && p.payload.first() == Some(&tag.wrapping_add(1)))
                    .then_some(p.payload)
            },
        )
        .await
        .map_err(|s| target.silent(s, "RAKP message 1", timing, false))?;
        // A BMC that took suite 17 yet keys RAKP with SHA-1 (pyghmi does) does not speak it.
        if suite == Suite::S17 && matches!(rakp.check2(&r2), Err(Rakp2Error::Malformed(_))) {
            return Ok(None);
        }
        let (bmc_random, guid) = rakp.check2(&r2).map_err(|e| match e {
            Rakp2Error::Status(0x0d) | Rakp2Error::Status(0x0c) => DriverError::Auth(format!(
                "BMC {} does not know the user '{}' (or the user may not log in over LAN)",
                target.name, target.user
            )),
            Rakp2Error::Status(0x09) | Rakp2Error::Status(0x0a) => DriverError::Auth(format!(
                "BMC {}: the user '{}' may not have ADMINISTRATOR privilege, which power control needs",
                target.name, target.user
            )),
            Rakp2Error::Status(s) => {
                DriverError::Refused(format!("BMC {} refused the login: {}", target.name, wire::rakp_status_text(s)))
            }
            Rakp2Error::BadKey => {
                DriverError::Auth(format!("BMC {}: wrong password for the user '{}'", target.name, target.user))
            }
            Rakp2Error::Malformed(m) => DriverError::Protocol(format!("BMC {}: {m}", target.name)),
        })?;

        let sik = rakp.sik(&bmc_random);
        let m3 = rakp.message3(tag.wrapping_add(2), &bmc_random);
        let r4 = exchange(
            &sock,
            timing,
            || wire::v2_packet(wire::PAYLOAD_RAKP3, 0, 0, &m3, None),
            |d| {
                let p = wire::parse_v2(d, None).ok()?;
                (p.payload_type == wire::PAYLOAD_RAKP4 && p.payload.first() == Some(&tag.wrapping_add(2)))
                    .then_some(p.payload)
            },
        )
        .await
        .map_err(|s| target.silent(s, "RAKP message 3", timing, false))?;
        rakp.check4(&r4, &sik, &guid).map_err(|e| match e {
            Rakp2Error::Status(s) => {
                DriverError::Auth(format!("BMC {} refused the login: {}", target.name, wire::rakp_status_text(s)))
            }
            Rakp2Error::BadKey | Rakp2Error::Malformed(_) => {
                DriverError::Protocol(format!("BMC {}: the session keys do not agree", target.name))
            }
        })?;

        Ok(Some(Session {
            sock,
            target: target.clone(),
            timing,
            auth: Auth::V2 { keys: Keys::derive(suite, &sik), console_sid },
            bmc_sid: resp.bmc_sid,
            seq: 1,
            rq_seq: 1,
        }))
    }

    /// Opens an IPMI v1.5 session (MD5, or straight password if that is all the BMC offers).
    pub async fn open_v15(target: &Target, timing: Timing) -> Result<Session, DriverError> {
        let user = wire::v15_user(&target.user).map_err(DriverError::Auth)?;
        let key = wire::v15_key(&target.password).map_err(DriverError::Auth)?;
        let sock = socket(target).await?;
        let mut s = Session {
            sock,
            target: target.clone(),
            timing,
            auth: Auth::V15 { auth: AuthType::None, key },
            bmc_sid: 0,
            seq: 0,
            rq_seq: 1,
        };
        let caps = s
            .command_at(
                wire::NETFN_APP,
                wire::CMD_GET_CHANNEL_AUTH_CAPABILITIES,
                &wire::auth_capabilities_request(false),
                true,
            )
            .await?;
        let auth = wire::pick_auth(&caps).ok_or_else(|| {
            DriverError::Unsupported(format!(
                "BMC {} offers neither MD5 nor password authentication for IPMI v1.5 (choose IPMI v2(lanplus))",
                target.name
            ))
        })?;
        let mut req = vec![auth as u8];
        req.extend(user);
        let challenge =
            s.command(wire::NETFN_APP, wire::CMD_GET_SESSION_CHALLENGE, &req).await.map_err(|e| match e {
                DriverError::Refused(m) if m.contains("0x81") || m.contains("0x82") => {
                    DriverError::Auth(format!("BMC {} does not know the user '{}'", target.name, target.user))
                }
                other => other,
            })?;
        if challenge.len() < 20 {
            return Err(DriverError::Protocol(format!("BMC {}: a short session challenge", target.name)));
        }
        s.bmc_sid = u32::from_le_bytes(challenge[..4].try_into().expect("4 bytes"));
        s.auth = Auth::V15 { auth, key };
        let console_seq: u32 = rand::random::<u32>() | 1;
        let mut act = vec![auth as u8, wire::PRIV_ADMIN];
        act.extend(&challenge[4..20]);
        act.extend(console_seq.to_le_bytes());
        let activated = s.command(wire::NETFN_APP, wire::CMD_ACTIVATE_SESSION, &act).await.map_err(|e| match e {
            DriverError::Timeout(_) => DriverError::Auth(format!(
                "BMC {} did not accept the login of '{}': wrong password, or the user may not use this \
                 authentication type",
                target.name, target.user
            )),
            other => other,
        })?;
        if activated.len() < 10 {
            return Err(DriverError::Protocol(format!("BMC {}: a short Activate Session answer", target.name)));
        }
        s.bmc_sid = u32::from_le_bytes(activated[1..5].try_into().expect("4 bytes"));
        s.seq = u32::from_le_bytes(activated[5..9].try_into().expect("4 bytes"));
        Ok(s)
    }

    /// Sessions start at USER privilege (enough to read status); power control and
    /// boot options need ADMINISTRATOR.
    pub async fn raise_privilege(&mut self) -> Result<(), DriverError> {
        self.command(wire::NETFN_APP, wire::CMD_SET_SESSION_PRIVILEGE, &[wire::PRIV_ADMIN]).await.map_err(
            |e| match e {
                DriverError::Refused(m) => DriverError::Auth(format!(
                    "BMC {}: the user '{}' cannot have ADMINISTRATOR privilege ({m})",
                    self.target.name, self.target.user
                )),
                other => other,
            },
        )?;
        Ok(())
    }

    /// Sends a command and returns its response data (after a zero completion code).
    pub async fn command(&mut self, netfn: u8, cmd: u8, data: &[u8]) -> Result<Vec<u8>, DriverError> {
        self.command_at(netfn, cmd, data, false).await
    }

    async fn command_at(&mut self, netfn: u8, cmd: u8, data: &[u8], first: bool) -> Result<Vec<u8>, DriverError> {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let rq_seq = self.rq_seq;
        let msg = wire::request(netfn, cmd, rq_seq, data);
        let Session { sock, auth, bmc_sid, seq, timing, .. } = self;
        let (bmc_sid, timing, auth) = (*bmc_sid, *timing, &*auth);
        let resp = exchange(
            sock,
            timing,
            || match auth {
                Auth::V2 { keys, .. } => {
                    let p = wire::v2_packet(wire::PAYLOAD_IPMI, bmc_sid, *seq, &msg, Some((keys, rand::random())));
                    *seq = seq.wrapping_add(1).max(1);
                    p
                }
                Auth::V15 { auth, key } => {
                    let p = wire::v15_packet(*auth, *seq, bmc_sid, key, &msg);
                    if *seq != 0 {
                        *seq = seq.wrapping_add(1).max(1);
                    }
                    p
                }
            },
            |d| {
                let payload = match auth {
                    Auth::V2 { keys, console_sid } => {
                        let p = wire::parse_v2(d, Some(keys)).ok()?;
                        (p.payload_type == wire::PAYLOAD_IPMI && p.session_id == *console_sid).then_some(p.payload)?
                    }
                    Auth::V15 { .. } => wire::parse_v15(d).ok()?.1,
                };
                let r = wire::parse_response(&payload).ok()?;
                (r.rq_seq == rq_seq && r.cmd == cmd && r.netfn == netfn + 1).then_some(r)
            },
        )
        .await
        .map_err(|s| self.target.silent(s, "a request", timing, first))?;
        if resp.completion != 0 {
            return Err(DriverError::Refused(format!(
                "BMC {} answered completion code 0x{:02x} ({})",
                self.target.name,
                resp.completion,
                wire::completion_text(resp.completion)
            )));
        }
        Ok(resp.data)
    }

    /// Closes the session without waiting for the answer: a lost close only leaves the
    /// session to the BMC's idle timeout.
    pub async fn close(mut self) {
        self.rq_seq = (self.rq_seq + 1) & 0x3f;
        let msg = wire::request(wire::NETFN_APP, wire::CMD_CLOSE_SESSION, self.rq_seq, &self.bmc_sid.to_le_bytes());
        let packet = match &self.auth {
            Auth::V2 { keys, .. } => {
                wire::v2_packet(wire::PAYLOAD_IPMI, self.bmc_sid, self.seq, &msg, Some((keys, rand::random())))
            }
            Auth::V15 { auth, key } => wire::v15_packet(*auth, self.seq, self.bmc_sid, key, &msg),
        };
        let _ = self.sock.send(&packet).await;
    }
}
