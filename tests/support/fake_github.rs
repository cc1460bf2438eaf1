//! A stateful fake of GitHub's pull request API, for tests that kill and restart things: it
//! remembers the pull requests it opened, lists open ones by `head` as GitHub does, and answers
//! a second create for the same branch with GitHub's 422 "A pull request already exists".

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

#[derive(Default)]
struct State {
    /// head branch -> PR number
    open: HashMap<String, u64>,
    next: u64,
    creates: usize,
    /// The bodies of the create requests that opened a pull request.
    created: Vec<Value>,
}

#[derive(Clone, Default)]
pub struct FakeGithub {
    state: Arc<Mutex<State>>,
    pub delay: Duration,
}

impl FakeGithub {
    /// Answers creates after `delay` (lists after half of it), like a slow forge.
    pub fn with_delay(delay: Duration) -> FakeGithub {
        FakeGithub {
            delay,
            ..Default::default()
        }
    }

    pub async fn mount(&self, server: &MockServer) {
        Mock::given(method("GET"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls$"))
            .respond_with(Lister(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls$"))
            .respond_with(Creator(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/issues/\d+/labels$"))
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(server)
            .await;
    }

    /// Pull requests opened, by head branch.
    pub fn open_prs(&self) -> HashMap<String, u64> {
        self.state.lock().unwrap().open.clone()
    }

    /// Create requests that opened a pull request (not the 422s).
    pub fn creates(&self) -> usize {
        self.state.lock().unwrap().creates
    }

    /// The create requests that opened a pull request, as sent (title, body, draft, ...).
    pub fn created(&self) -> Vec<Value> {
        self.state.lock().unwrap().created.clone()
    }
}

fn pr_json(number: u64, branch: &str) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/web/pull/{number}"),
           "state": "open", "head": {"ref": branch}})
}

struct Lister(FakeGithub);

impl Respond for Lister {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let head = request
            .url
            .query_pairs()
            .find(|(k, _)| k == "head")
            .map(|(_, v)| {
                v.split_once(':')
                    .map_or(v.to_string(), |(_, b)| b.to_owned())
            });
        let state = self.0.state.lock().unwrap();
        let listed: Vec<Value> = state
            .open
            .iter()
            .filter(|(branch, _)| head.as_deref().is_none_or(|h| h == branch.as_str()))
            .map(|(branch, number)| pr_json(*number, branch))
            .collect();
        ResponseTemplate::new(200)
            .set_body_json(listed)
            .set_delay(self.0.delay / 2)
    }
}

struct Creator(FakeGithub);

impl Respond for Creator {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let branch = body["head"].as_str().unwrap_or_default().to_owned();
        let mut state = self.0.state.lock().unwrap();
        if state.open.contains_key(&branch) {
            return ResponseTemplate::new(422).set_body_json(json!({
                "message": "Validation Failed",
                "errors": [{"resource": "PullRequest", "code": "custom",
                            "message": format!("A pull request already exists for acme:{branch}.")}]}));
        }
        state.next += 1;
        state.creates += 1;
        state.created.push(body.clone());
        let number = state.next;
        state.open.insert(branch.clone(), number);
        // The PR exists from now on, even if the caller dies before reading the answer.
        ResponseTemplate::new(201)
            .set_body_json(pr_json(number, &branch))
            .set_delay(self.0.delay)
    }
}
