//! What happens to a job next, as pure functions: [`admit`] decides at claim time whether a job
//! may start at all (a job whose starts keep dying is dead-lettered, not run again), and
//! [`decide`] turns how a delivery went into a [`Settlement`]. The runner carries a settlement
//! out (database writes, publishes, the ack) and decides nothing itself.

/// The configured bounds a decision depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Attempts (settled tries) before a transiently failing job is dead-lettered.
    pub max_attempts: u32,
    /// Starts that died without settling (worker killed, OOM, crash) before a job is
    /// dead-lettered as `crashed`. Counted in Postgres, not by the broker: parking and rescue
    /// republish fresh messages, which resets the broker's own delivery count.
    pub delivery_limit: u32,
    /// The retry tiers, shortest first; the last one repeats.
    pub retry_delays_secs: Vec<u64>,
}

impl Limits {
    /// The delay of the retry tier after the `attempt`-th try (1-based); `None` with no tiers.
    pub fn retry_delay(&self, attempt: u32) -> Option<u64> {
        let last = self.retry_delays_secs.len().checked_sub(1)?;
        let index = (attempt.max(1) as usize - 1).min(last);
        Some(self.retry_delays_secs[index])
    }
}

/// Whether a claimed job may run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Run,
    /// Its last `delivery_limit` starts all died before settling.
    DeadLetter(DeadReason),
}

/// `starts`: the claims since the job's last settled attempt, this one included.
pub fn admit(starts: u32, limits: &Limits) -> Admission {
    if starts > limits.delivery_limit {
        Admission::DeadLetter(DeadReason::Crashed)
    } else {
        Admission::Run
    }
}

/// How a delivery went: what its claim found, or how the job it ran ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Succeeded,
    /// A cancel was accepted before one of its steps.
    Cancelled,
    /// A step failed; `transient`: a later attempt may succeed (network, 5xx, timeouts, a
    /// panic). Permanent failures (repository gone, no acceptable patch) are not retried.
    Failed {
        transient: bool,
    },
    /// Crash-looping: refused by [`admit`].
    Refused(DeadReason),
    /// The claim found the operation RUNNING under a worker whose heartbeat is fresh.
    HeldElsewhere,
    /// The claim found the operation ended: a duplicate delivery.
    AlreadyEnded,
    /// No operation has the message's id.
    Missing,
}

/// Why a message went to the dead-letter queue; the header value and metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadReason {
    /// Transient failures on every one of `max_attempts` attempts.
    MaxAttempts,
    /// `delivery_limit` starts died without settling.
    Crashed,
    /// The message names no operation.
    UnknownOperation,
    /// The message body is not a job message.
    Unparseable,
}

impl DeadReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DeadReason::MaxAttempts => "max_attempts",
            DeadReason::Crashed => "crashed",
            DeadReason::UnknownOperation => "unknown_operation",
            DeadReason::Unparseable => "unparseable",
        }
    }
}

/// What the runner does with a delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settlement {
    /// End SUCCEEDED, write the fix back to the assessment.
    Succeed,
    /// End CANCELLED.
    Cancel,
    /// End FAILED at once: retrying cannot help.
    Fail,
    /// Back to PENDING; republish to the retry tier of `delay_secs`.
    Retry { attempt: u32, delay_secs: u64 },
    /// Publish to the dead-letter queue; a known operation also ends FAILED (replayable).
    DeadLetter(DeadReason),
    /// Republish to the retry tier of `delay_secs` without touching the operation: it comes
    /// back and is either skipped (finished) or taken over (its worker's heartbeat stopped).
    Park { delay_secs: u64 },
    /// Acknowledge and do nothing.
    Skip,
}

/// `attempt`: the 1-based attempt that just ended (ignored where no job ran).
pub fn decide(outcome: Outcome, attempt: u32, limits: &Limits) -> Settlement {
    match outcome {
        Outcome::Succeeded => Settlement::Succeed,
        Outcome::Cancelled => Settlement::Cancel,
        Outcome::Failed { transient: false } => Settlement::Fail,
        Outcome::Failed { transient: true } => match limits.retry_delay(attempt) {
            Some(delay_secs) if attempt < limits.max_attempts => Settlement::Retry {
                attempt,
                delay_secs,
            },
            _ => Settlement::DeadLetter(DeadReason::MaxAttempts),
        },
        Outcome::Refused(reason) => Settlement::DeadLetter(reason),
        // Without retry tiers there is nowhere to park; the rescuer republishes the job if
        // its worker is really gone.
        Outcome::HeldElsewhere => match limits.retry_delay(1) {
            Some(delay_secs) => Settlement::Park { delay_secs },
            None => Settlement::Skip,
        },
        Outcome::AlreadyEnded => Settlement::Skip,
        Outcome::Missing => Settlement::DeadLetter(DeadReason::UnknownOperation),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            max_attempts: 3,
            delivery_limit: 2,
            retry_delays_secs: vec![10, 60],
        }
    }

    fn no_tiers() -> Limits {
        Limits {
            retry_delays_secs: vec![],
            ..limits()
        }
    }

    #[test]
    fn starts_are_admitted_up_to_the_delivery_limit() {
        let l = limits();
        assert_eq!(admit(0, &l), Admission::Run);
        assert_eq!(admit(1, &l), Admission::Run);
        assert_eq!(admit(2, &l), Admission::Run);
        assert_eq!(admit(3, &l), Admission::DeadLetter(DeadReason::Crashed));
        assert_eq!(admit(40, &l), Admission::DeadLetter(DeadReason::Crashed));
        let none = Limits {
            delivery_limit: 0,
            ..l
        };
        assert_eq!(admit(1, &none), Admission::DeadLetter(DeadReason::Crashed));
    }

    #[test]
    fn transient_failures_retry_in_growing_tiers_until_max_attempts() {
        let l = limits();
        let transient = Outcome::Failed { transient: true };
        assert_eq!(
            decide(transient, 1, &l),
            Settlement::Retry {
                attempt: 1,
                delay_secs: 10
            }
        );
        assert_eq!(
            decide(transient, 2, &l),
            Settlement::Retry {
                attempt: 2,
                delay_secs: 60
            }
        );
        assert_eq!(
            decide(transient, 3, &l),
            Settlement::DeadLetter(DeadReason::MaxAttempts)
        );
        assert_eq!(
            decide(transient, 9, &l),
            Settlement::DeadLetter(DeadReason::MaxAttempts)
        );
        // The last tier repeats when there are more attempts than tiers.
        let many = Limits {
            max_attempts: 10,
            ..limits()
        };
        assert_eq!(
            decide(transient, 7, &many),
            Settlement::Retry {
                attempt: 7,
                delay_secs: 60
            }
        );
        // With no tier to wait in, a transient failure is dead-lettered at once.
        assert_eq!(
            decide(transient, 1, &no_tiers()),
            Settlement::DeadLetter(DeadReason::MaxAttempts)
        );
    }

    #[test]
    fn every_other_outcome_ignores_the_attempt() {
        for l in [limits(), no_tiers()] {
            for attempt in [0, 1, 2, 3, 4, 100] {
                assert_eq!(decide(Outcome::Succeeded, attempt, &l), Settlement::Succeed);
                assert_eq!(decide(Outcome::Cancelled, attempt, &l), Settlement::Cancel);
                assert_eq!(
                    decide(Outcome::Failed { transient: false }, attempt, &l),
                    Settlement::Fail
                );
                assert_eq!(
                    decide(Outcome::Refused(DeadReason::Crashed), attempt, &l),
                    Settlement::DeadLetter(DeadReason::Crashed)
                );
                assert_eq!(decide(Outcome::AlreadyEnded, attempt, &l), Settlement::Skip);
                assert_eq!(
                    decide(Outcome::Missing, attempt, &l),
                    Settlement::DeadLetter(DeadReason::UnknownOperation)
                );
            }
        }
    }

    #[test]
    fn a_job_held_elsewhere_is_parked_in_the_first_tier() {
        assert_eq!(
            decide(Outcome::HeldElsewhere, 5, &limits()),
            Settlement::Park { delay_secs: 10 }
        );
        assert_eq!(
            decide(Outcome::HeldElsewhere, 5, &no_tiers()),
            Settlement::Skip
        );
    }

    #[test]
    fn retry_delay_saturates_and_treats_attempt_zero_as_the_first() {
        let l = limits();
        assert_eq!(l.retry_delay(0), Some(10));
        assert_eq!(l.retry_delay(1), Some(10));
        assert_eq!(l.retry_delay(2), Some(60));
        assert_eq!(l.retry_delay(3), Some(60));
        assert_eq!(no_tiers().retry_delay(1), None);
    }
}
