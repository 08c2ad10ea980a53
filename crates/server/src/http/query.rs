//! Query-string parameters of the read routes.

use super::error::HttpError;
use crate::seasons::Which;
use crate::store::model::Window;

/// A query string's parameters, read without allocating. Unknown parameters are ignored.
pub(super) struct Query<'a>(pub(super) &'a str);

impl<'a> Query<'a> {
    fn get(&self, name: &str) -> Option<&'a str> {
        self.0
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(key, _)| *key == name)
            .map(|(_, value)| value)
    }

    /// `limit`: 1 to 100, `default` when absent.
    pub(super) fn limit(&self, default: usize) -> Result<usize, HttpError<'static>> {
        match self.get("limit") {
            None => Ok(default),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|limit| (1..=100).contains(limit))
                .ok_or(HttpError::InvalidParameter {
                    name: "limit",
                    reason: "must be a whole number from 1 to 100",
                }),
        }
    }

    /// `window`: all (the default), day or week.
    pub(super) fn window(&self) -> Result<Window, HttpError<'static>> {
        match self.get("window") {
            None => Ok(Window::All),
            Some(text) => Window::parse(text).ok_or(HttpError::InvalidParameter {
                name: "window",
                reason: "must be all, day or week",
            }),
        }
    }

    /// `season`: current (the default) or previous.
    pub(super) fn season(&self) -> Result<Which, HttpError<'static>> {
        match self.get("season") {
            None | Some("current") => Ok(Which::Current),
            Some("previous") => Ok(Which::Previous),
            Some(_) => Err(HttpError::InvalidParameter {
                name: "season",
                reason: "must be current or previous",
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_and_windows_are_read_and_checked() {
        assert_eq!(Query("").limit(20).unwrap(), 20);
        assert_eq!(Query("window=day&limit=7").limit(20).unwrap(), 7);
        assert_eq!(Query("limit=100").limit(20).unwrap(), 100);
        for bad in [
            "limit=0",
            "limit=101",
            "limit=",
            "limit",
            "limit=1e2",
            "limit=%31",
        ] {
            assert!(Query(bad).limit(20).is_err(), "{bad}");
        }
        assert_eq!(Query("x=1").window().unwrap(), Window::All);
        assert_eq!(Query("window=week").window().unwrap(), Window::Week);
        for bad in ["window=", "window=year", "window=DAY"] {
            assert!(Query(bad).window().is_err(), "{bad}");
        }
        assert_eq!(Query("limit=3").season().unwrap(), Which::Current);
        assert_eq!(Query("season=current").season().unwrap(), Which::Current);
        assert_eq!(Query("season=previous").season().unwrap(), Which::Previous);
        for bad in [
            "season=",
            "season=last",
            "season=PREVIOUS",
            "season=2026-12",
        ] {
            assert!(Query(bad).season().is_err(), "{bad}");
        }
    }
}
