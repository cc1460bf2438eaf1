//! The webhook secret of each forge, loaded once at startup from `[webhooks]` (environment or
//! secret file). `Debug` never shows them.

use std::fmt;

use secrecy::SecretString;

use super::WebhookForge;
use crate::config::WebhookSettings;

#[derive(Clone, Default)]
pub struct WebhookSecrets {
    github: Option<SecretString>,
    gitlab: Option<SecretString>,
    gitea: Option<SecretString>,
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &Option<SecretString>| if s.is_some() { "[REDACTED]" } else { "unset" };
        f.debug_struct("WebhookSecrets")
            .field("github", &set(&self.github))
            .field("gitlab", &set(&self.gitlab))
            .field("gitea", &set(&self.gitea))
            .finish()
    }
}

impl WebhookSecrets {
    pub fn from_settings(settings: &WebhookSettings) -> Self {
        WebhookSecrets {
            github: settings.github_secret.clone(),
            gitlab: settings.gitlab_secret.clone(),
            gitea: settings.gitea_secret.clone(),
        }
    }

    /// The forge's secret; `None`: its endpoint refuses every delivery.
    pub fn get(&self, forge: WebhookForge) -> Option<&SecretString> {
        match forge {
            WebhookForge::Github => self.github.as_ref(),
            WebhookForge::Gitlab => self.gitlab.as_ref(),
            WebhookForge::Gitea => self.gitea.as_ref(),
        }
    }
}
