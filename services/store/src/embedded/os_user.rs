//! Postgres refuses to run as root. When we are root, every server process runs as the
//! `postgres` system user and the cluster's directories belong to it.

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use crate::EmbeddedError;

/// The identity server processes run under; `None` fields mean "as ourselves".
#[derive(Debug, Clone, Copy)]
pub(crate) struct RunAs {
    pub uid: u32,
    pub gid: u32,
    /// True when we switch identity (we are root); then ownership and traversal matter.
    pub switch: bool,
}

impl RunAs {
    pub(crate) fn detect() -> Result<RunAs, EmbeddedError> {
        // SAFETY: geteuid/getegid have no preconditions and cannot fail.
        let (euid, egid) = unsafe { (libc::geteuid(), libc::getegid()) };
        if euid != 0 {
            return Ok(RunAs {
                uid: euid,
                gid: egid,
                switch: false,
            });
        }
        let (uid, gid) = lookup_user("postgres").ok_or(EmbeddedError::NoPostgresUser)?;
        Ok(RunAs {
            uid,
            gid,
            switch: true,
        })
    }

    /// A command that runs as this identity (`setuid`/`setgid` in the child; std also drops
    /// supplementary groups when it changes uid as root).
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(program);
        if self.switch {
            cmd.uid(self.uid).gid(self.gid);
            // Our own cwd (often /root) is not readable by the postgres user; initdb complains.
            cmd.current_dir("/");
        }
        cmd
    }

    /// Creates `dir` (mode 0700) owned by this identity.
    pub(crate) fn make_private_dir(&self, dir: &Path) -> Result<(), EmbeddedError> {
        let io = |action| {
            move |source| EmbeddedError::Io {
                action,
                path: dir.to_owned(),
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(io("cannot create"))?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io("cannot chmod"))?;
        if self.switch {
            std::os::unix::fs::chown(dir, Some(self.uid), Some(self.gid))
                .map_err(io("cannot chown"))?;
        }
        Ok(())
    }

    /// The postgres user must be able to walk down to `dir`: every ancestor needs o+x (or be
    /// owned by it). Checked up front because initdb's own message is obscure.
    pub(crate) fn check_traversable(&self, dir: &Path) -> Result<(), EmbeddedError> {
        if !self.switch {
            return Ok(());
        }
        for ancestor in dir.ancestors().skip(1) {
            let Ok(meta) = std::fs::metadata(ancestor) else {
                continue;
            };
            let others_x = meta.mode() & 0o001 != 0;
            let owner_x = meta.uid() == self.uid && meta.mode() & 0o100 != 0;
            let group_x = meta.gid() == self.gid && meta.mode() & 0o010 != 0;
            if !(others_x || owner_x || group_x) {
                return Err(EmbeddedError::NotTraversable {
                    path: ancestor.to_owned(),
                });
            }
        }
        Ok(())
    }
}

fn lookup_user(name: &str) -> Option<(u32, u32)> {
    let cname = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: all pointers are valid for the call; buf outlives the use of `pwd`'s string fields
    // (we only read the integer uid/gid before returning).
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some((pwd.pw_uid, pwd.pw_gid))
}
