//! The TLS certificate, when the public listener has one: the files load the way `serve`
//! loads them (both parse, the key fits the certificate), and the certificate is valid now and
//! for a while yet.

use std::path::Path;
use std::time::{Duration, SystemTime};

use super::Check;
use crate::net::tls;

const NAME: &str = "tls_certificate";
/// Less than this left before expiry is a warning: time to renew and send SIGHUP.
const RENEW_BEFORE: Duration = Duration::from_secs(14 * 24 * 3600);

pub(super) fn check_certificate(certificate: &Path, key: &Path) -> Check {
    let loaded = tls::load(certificate, key);
    judge(certificate, loaded.as_ref(), SystemTime::now())
}

fn judge(
    certificate: &Path,
    loaded: Result<&tls::Loaded, &tls::TlsError>,
    now: SystemTime,
) -> Check {
    const EXPECTED: &str =
        "a readable certificate chain and matching key, valid now and for more than 14 days";
    let renew = format!(
        "install a renewed certificate at {} (and its key), then `kill -HUP <pid>`: new \
         handshakes use it, open connections are kept",
        certificate.display()
    );
    let loaded = match loaded {
        Ok(loaded) => loaded,
        Err(error) => {
            return Check::fail(
                NAME,
                error.to_string(),
                EXPECTED,
                "point tls_certificate and tls_key at a PEM chain (end entity first) and its \
                 private key (PKCS#8, PKCS#1 or SEC1)",
            );
        }
    };
    let expires = httpdate::fmt_http_date(loaded.not_after);
    let measured = |state: &str| format!("{}: {state} (expires {expires})", loaded.subject);
    if loaded.not_after <= now {
        return Check::fail(NAME, measured("expired"), EXPECTED, renew);
    }
    if loaded.not_before > now {
        return Check::fail(
            NAME,
            measured(&format!(
                "not valid before {}",
                httpdate::fmt_http_date(loaded.not_before)
            )),
            EXPECTED,
            "check this host's clock (see the clock check), or use a certificate valid now",
        );
    }
    let left = loaded.not_after.duration_since(now).unwrap_or_default();
    let days = left.as_secs() / 86_400;
    if left < RENEW_BEFORE {
        return Check::warn(
            NAME,
            measured(&format!("valid, {days} days left")),
            EXPECTED,
            renew,
        );
    }
    Check::pass(
        NAME,
        measured(&format!("valid, {days} days left")),
        EXPECTED,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doctor::Status;

    fn pair(dir: &Path, days_valid: i64) -> (std::path::PathBuf, std::path::PathBuf) {
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        let now = rcgen::date_time_ymd(2026, 1, 1);
        params.not_before = now;
        params.not_after = now + time::Duration::days(days_valid);
        let key = rcgen::KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        let certificate_path = dir.join(format!("cert-{days_valid}.pem"));
        let key_path = dir.join(format!("key-{days_valid}.pem"));
        std::fs::write(&certificate_path, certificate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (certificate_path, key_path)
    }

    fn at(days_after_2026: u64) -> SystemTime {
        // 2026-01-01T00:00:00Z
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + days_after_2026 * 86_400)
    }

    fn judged(days_valid: i64, now: SystemTime) -> Check {
        let dir = tempfile::Builder::new()
            .prefix("guess-game-doctor-tls-")
            .tempdir()
            .unwrap();
        let (certificate, key) = pair(dir.path(), days_valid);
        let loaded = tls::load(&certificate, &key);
        judge(&certificate, loaded.as_ref(), now)
    }

    #[test]
    fn a_certificate_valid_for_months_passes() {
        let check = judged(90, at(10));
        assert_eq!(check.status, Status::Pass, "{check:?}");
        assert!(check.measured.contains("80 days left"), "{check:?}");
    }

    #[test]
    fn a_certificate_close_to_expiry_warns_with_the_reload_command() {
        let check = judged(90, at(80));
        assert_eq!(check.status, Status::Warn, "{check:?}");
        assert!(check.fix.as_deref().unwrap().contains("kill -HUP"));
    }

    #[test]
    fn an_expired_or_not_yet_valid_certificate_fails() {
        assert_eq!(judged(30, at(31)).status, Status::Fail);
        let early = judged(
            30,
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        assert_eq!(early.status, Status::Fail);
        assert!(early.measured.contains("not valid before"), "{early:?}");
    }

    #[test]
    fn unreadable_files_fail_with_the_reason() {
        let missing = Path::new("/nonexistent/cert.pem");
        let check = check_certificate(missing, missing);
        assert_eq!(check.status, Status::Fail);
        assert!(
            check.measured.contains("/nonexistent/cert.pem"),
            "{check:?}"
        );
    }
}
