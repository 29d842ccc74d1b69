//! TFTP, read-only, for the one thing that still needs it: the iPXE loaders a PXE ROM
//! fetches (`undionly.kpxe`, `snponly.efi`) before anything can speak HTTP.
//!
//! `async-tftp` does the protocol; this module only logs each read, so a test or an
//! operator can see how far a machine got. It serves whatever the directory holds
//! (Debian's `/usr/lib/ipxe` by default) and never accepts writes.

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;

use async_tftp::packet;
use async_tftp::server::handlers::{DirHandler, DirHandlerMode};
use async_tftp::server::{Handler, TftpServer, TftpServerBuilder};

use crate::NetbootConfig;
use crate::boots::{EventKind, EventLog};

pub(crate) struct LoggedDir {
    dir: DirHandler,
    events: EventLog,
}

impl Handler for LoggedDir {
    type Reader = <DirHandler as Handler>::Reader;
    type Writer = <DirHandler as Handler>::Writer;

    async fn read_req_open(
        &mut self,
        client: &SocketAddr,
        path: &Path,
    ) -> Result<(Self::Reader, Option<u64>), packet::Error> {
        let r = self.dir.read_req_open(client, path).await;
        let file = path.display().to_string();
        tracing::debug!(%client, %file, found = r.is_ok(), "TFTP read");
        self.events.push(EventKind::TftpRead { peer: *client, file, found: r.is_ok() });
        r
    }

    async fn write_req_open(
        &mut self,
        _client: &SocketAddr,
        _path: &Path,
        _size: Option<u64>,
    ) -> Result<Self::Writer, packet::Error> {
        Err(packet::Error::IllegalOperation)
    }
}

/// Binds `server_ip:tftp_port` (transfers use ephemeral ports on the same address).
pub(crate) async fn build(cfg: &NetbootConfig, events: EventLog) -> std::io::Result<TftpServer<LoggedDir>> {
    let dir = DirHandler::new(&cfg.tftp_root, DirHandlerMode::ReadOnly).map_err(std::io::Error::other)?;
    let sock = UdpSocket::bind((cfg.server_ip, cfg.tftp_port))?;
    TftpServerBuilder::with_handler(LoggedDir { dir, events })
        .std_socket(sock)
        .map_err(std::io::Error::other)?
        .build()
        .await
        .map_err(std::io::Error::other)
}

pub(crate) async fn serve(server: TftpServer<LoggedDir>) {
    if let Err(e) = server.serve().await {
        tracing::error!(error = %e, "TFTP server stopped");
    }
}
