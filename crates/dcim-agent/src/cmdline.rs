//! The agent's instructions, read from the kernel command line.
//!
//! The netboot service writes them into the iPXE script's `kernel` line, so the
//! boot image itself carries no per-task state and one image serves every task.
//! This module only parses; it must not act on what it reads. A command line
//! without `dcim.callback` and `dcim.task` is not an agent boot at all (say, the
//! binary was started on a workstation), and [`Params::parse`] refuses it, so
//! nothing is wiped and nothing is powered off.

use anyhow::{Context, bail};
pub use dcim_core::ClearMode;

/// What the agent is booted to do (`dcim.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Report the hardware, then wipe unless `clear_hdd` is `none`.
    Diag,
    /// Wipe only.
    Wipe,
    /// Build the RAID and write the OS image of the answer.
    Install,
}

/// Everything the kernel command line tells the agent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Params {
    /// Reports go to `{callback}/{task}/report`.
    pub callback: String,
    pub task: i64,
    /// Sent as `Authorization: Bearer {secret}`; never logged.
    pub secret: String,
    pub mode: Mode,
    /// `None` when the command line does not say; then the answer data decides.
    pub clear_hdd: Option<ClearMode>,
    /// `GET` with the secret gives the boot's answer data (the netboot service's `/boot/{mac}/answer`).
    pub answer: Option<String>,
    /// `dcim.timeout=SECONDS`: give up, report and power off after this long (0: never).
    pub timeout: Option<u64>,
}

impl Params {
    /// Parses a `/proc/cmdline`. Unknown words (the kernel's own, `console=` ...) are ignored.
    pub fn parse(cmdline: &str) -> anyhow::Result<Self> {
        let get =
            |key: &str| cmdline.split_whitespace().filter_map(|w| w.strip_prefix(key)?.strip_prefix('=')).next_back();
        let (Some(callback), Some(task)) = (get("dcim.callback"), get("dcim.task")) else {
            bail!("the kernel command line has no dcim.callback= and dcim.task=: this is not an agent boot");
        };
        let task = task.parse().with_context(|| format!("dcim.task={task}: not a task id"))?;
        let mode = match get("dcim.mode").unwrap_or("diag") {
            "diag" => Mode::Diag,
            "wipe" => Mode::Wipe,
            "install" => Mode::Install,
            other => bail!("dcim.mode={other}: expected diag, wipe or install"),
        };
        Ok(Params {
            callback: callback.trim_end_matches('/').to_owned(),
            task,
            secret: get("dcim.secret").unwrap_or_default().to_owned(),
            mode,
            clear_hdd: get("dcim.clear_hdd").map(parse_clear).transpose()?,
            answer: get("dcim.answer").map(str::to_owned),
            timeout: get("dcim.timeout")
                .map(|t| t.parse().with_context(|| format!("dcim.timeout={t}: not a number of seconds")))
                .transpose()?,
        })
    }

    /// The report URL.
    pub fn report_url(&self) -> String {
        format!("{}/{}/report", self.callback, self.task)
    }
}

/// A `clear_hdd` value, from the command line or the answer data.
pub fn parse_clear(s: &str) -> anyhow::Result<ClearMode> {
    s.parse().with_context(|| format!("dcim.clear_hdd={s}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_netboot_kernel_line() {
        let p = Params::parse(
            "BOOT_IMAGE=vmlinuz initrd=initrd.gz console=ttyS0 quiet dcim.callback=http://10.78.0.1:8080/agent/v1/task/ \
             dcim.task=42 dcim.secret=tok3n dcim.mode=wipe dcim.clear_hdd=full \
             dcim.answer=http://10.78.0.1:8080/boot/52-54-00-78-00-01/answer\n",
        )
        .unwrap();
        assert_eq!(p.callback, "http://10.78.0.1:8080/agent/v1/task");
        assert_eq!(p.report_url(), "http://10.78.0.1:8080/agent/v1/task/42/report");
        assert_eq!((p.task, p.secret.as_str(), p.mode), (42, "tok3n", Mode::Wipe));
        assert_eq!(p.clear_hdd, Some(ClearMode::Full));
        assert_eq!(p.answer.as_deref(), Some("http://10.78.0.1:8080/boot/52-54-00-78-00-01/answer"));
    }

    #[test]
    fn defaults_and_refusals() {
        let p = Params::parse("dcim.callback=http://h/a dcim.task=7").unwrap();
        assert_eq!((p.mode, p.clear_hdd, p.secret.as_str(), p.timeout), (Mode::Diag, None, "", None));
        assert_eq!(Params::parse("dcim.callback=http://h/a dcim.task=7 dcim.timeout=600").unwrap().timeout, Some(600));
        assert!(Params::parse("dcim.callback=http://h/a dcim.task=7 dcim.timeout=soon").is_err());
        // a workstation's command line is not an agent boot
        assert!(Params::parse("BOOT_IMAGE=/vmlinuz root=/dev/sda1 ro quiet").is_err());
        assert!(Params::parse("dcim.callback=http://h/a dcim.task=x").is_err());
        assert!(Params::parse("dcim.callback=http://h/a dcim.task=1 dcim.clear_hdd=some").is_err());
        assert!(Params::parse("dcim.callback=http://h/a dcim.task=1 dcim.mode=dance").is_err());
        // a key that is only a prefix of another is not confused with it
        assert!(Params::parse("dcim.callbackx=1 dcim.task=1").is_err());
    }
}
