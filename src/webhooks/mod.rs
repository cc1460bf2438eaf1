//! Forge webhooks: who may send them and what they say. `verify` checks that a delivery comes
//! from the forge (each forge's signature scheme, constant-time), `events` reads the pull
//! request and merge request events into what happened to which pull request, and `secrets`
//! holds the per-forge secrets. The HTTP endpoint that ties them to the database is
//! `api::webhooks`.

pub mod events;
pub mod secrets;
pub mod verify;

/// The forges that send webhooks, as the endpoint path names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookForge {
    Github,
    Gitlab,
    /// Gitea and Forgejo (Forgejo sends the same headers under both names).
    Gitea,
}

impl WebhookForge {
    pub fn parse(path: &str) -> Option<Self> {
        match path {
            "github" => Some(WebhookForge::Github),
            "gitlab" => Some(WebhookForge::Gitlab),
            "gitea" | "forgejo" => Some(WebhookForge::Gitea),
            _ => None,
        }
    }

    /// The forge name a remediation fix records (`Forge::name`).
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookForge::Github => "github",
            WebhookForge::Gitlab => "gitlab",
            WebhookForge::Gitea => "gitea",
        }
    }

    /// The headers naming a delivery, first match wins.
    pub fn delivery_headers(self) -> &'static [&'static str] {
        match self {
            WebhookForge::Github => &["x-github-delivery"],
            WebhookForge::Gitlab => &["x-gitlab-event-uuid", "idempotency-key"],
            WebhookForge::Gitea => &["x-gitea-delivery", "x-forgejo-delivery"],
        }
    }

    /// The headers naming the event type, first match wins.
    pub fn event_headers(self) -> &'static [&'static str] {
        match self {
            WebhookForge::Github => &["x-github-event"],
            WebhookForge::Gitlab => &["x-gitlab-event"],
            WebhookForge::Gitea => &["x-gitea-event", "x-forgejo-event"],
        }
    }
}
