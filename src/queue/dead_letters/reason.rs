//! Why a message sits in the dead-letter queue, as read back from it: one of the reasons the
//! worker writes ([`DeadReason`]), the broker's own delivery limit, or a reason this release
//! does not know (written by another release, or another broker rule), kept as read so it
//! still shows and filters. Text exists only at the edges (the AMQP header, a form, a CLI
//! argument, JSON), and this file is where it is read and written.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use crate::lifecycle::DeadReason;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterReason {
    /// Written by the worker in our own header.
    Ours(DeadReason),
    /// RabbitMQ dead-lettered the message itself: the quorum queue's delivery limit.
    DeliveryLimit,
    /// Anything else, exactly as read.
    Unrecognised(String),
}

/// What the broker writes in `x-first-death-reason` for [`DeadLetterReason::DeliveryLimit`].
const DELIVERY_LIMIT: &str = "delivery_limit";
/// What a message that records no reason at all shows.
const UNRECORDED: &str = "unknown";

impl DeadLetterReason {
    /// The reasons a filter offers, in the order it offers them.
    pub const NAMED: [DeadLetterReason; 5] = [
        DeadLetterReason::Ours(DeadReason::MaxAttempts),
        DeadLetterReason::Ours(DeadReason::Crashed),
        DeadLetterReason::Ours(DeadReason::UnknownOperation),
        DeadLetterReason::Ours(DeadReason::Unparseable),
        DeadLetterReason::DeliveryLimit,
    ];

    /// Reads a reason; never fails, since an unknown one must still be shown.
    pub fn parse(text: &str) -> DeadLetterReason {
        Self::NAMED
            .into_iter()
            .find(|named| named.as_str() == text)
            .unwrap_or_else(|| DeadLetterReason::Unrecognised(text.to_owned()))
    }

    /// The reason of a message that names none (neither our header nor the broker's).
    pub fn unrecorded() -> DeadLetterReason {
        DeadLetterReason::Unrecognised(UNRECORDED.to_owned())
    }

    pub fn as_str(&self) -> &str {
        match self {
            DeadLetterReason::Ours(reason) => reason.as_str(),
            DeadLetterReason::DeliveryLimit => DELIVERY_LIMIT,
            DeadLetterReason::Unrecognised(text) => text,
        }
    }
}

impl From<DeadReason> for DeadLetterReason {
    fn from(reason: DeadReason) -> Self {
        DeadLetterReason::Ours(reason)
    }
}

impl FromStr for DeadLetterReason {
    type Err = Infallible;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(DeadLetterReason::parse(text))
    }
}

impl fmt::Display for DeadLetterReason {
    /// `pad`, so the CLI's table can align it with `{:<18}`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for DeadLetterReason {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_reads_back_as_written() {
        for named in DeadLetterReason::NAMED {
            assert_eq!(DeadLetterReason::parse(named.as_str()), named);
        }
        assert_eq!(
            DeadLetterReason::parse("crashed"),
            DeadLetterReason::Ours(DeadReason::Crashed)
        );
        assert_eq!(
            DeadLetterReason::parse("delivery_limit"),
            DeadLetterReason::DeliveryLimit
        );
    }

    #[test]
    fn every_worker_reason_is_offered() {
        // A new `DeadReason` fails to compile here until it is listed in `NAMED`.
        let listed = |reason: DeadReason| match reason {
            DeadReason::MaxAttempts
            | DeadReason::Crashed
            | DeadReason::UnknownOperation
            | DeadReason::Unparseable => DeadLetterReason::NAMED.contains(&reason.into()),
        };
        assert!(listed(DeadReason::MaxAttempts));
        assert!(listed(DeadReason::Crashed));
        assert!(listed(DeadReason::UnknownOperation));
        assert!(listed(DeadReason::Unparseable));
    }

    #[test]
    fn unknown_reasons_show_as_read() {
        let old = DeadLetterReason::parse("rejected");
        assert_eq!(old, DeadLetterReason::Unrecognised("rejected".into()));
        assert_eq!(old.to_string(), "rejected");
        assert_eq!(DeadLetterReason::unrecorded().to_string(), "unknown");
        assert_eq!(
            serde_json::to_value(DeadLetterReason::DeliveryLimit).unwrap(),
            serde_json::json!("delivery_limit")
        );
        assert_eq!(
            format!("{:<8}|", DeadLetterReason::DeliveryLimit),
            "delivery_limit|"
        );
        assert_eq!(format!("{:<9}|", old), "rejected |");
    }
}
