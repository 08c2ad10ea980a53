//! The two wire formats, named where the HTTP surface, the store (which keeps idempotent
//! answers with their format) and anyone else can see them without reaching into each other.

pub const JSON: &str = "application/json";
pub const MSGPACK: &str = "application/msgpack";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Json,
    MsgPack,
}

impl Format {
    pub const fn content_type(self) -> &'static str {
        match self {
            Format::Json => JSON,
            Format::MsgPack => MSGPACK,
        }
    }

    /// The format a media type names (parameters and case ignored), if it is one of ours.
    pub fn of_media_type(media_type: &[u8]) -> Option<Format> {
        let essence = media_type
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let is = |name: &str| essence.eq_ignore_ascii_case(name.as_bytes());
        if is(JSON)
            || (essence.len() > 5 && essence[essence.len() - 5..].eq_ignore_ascii_case(b"+json"))
        {
            Some(Format::Json)
        } else if is(MSGPACK) || is("application/x-msgpack") || is("application/vnd.msgpack") {
            Some(Format::MsgPack)
        } else {
            None
        }
    }
}
