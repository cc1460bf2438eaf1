//! A stateful fake of GitHub's pull request API, for tests that kill and restart things: it
//! remembers the pull requests it opened, lists open ones by `head` as GitHub does, and answers
//! a second create for the same branch with GitHub's 422 "A pull request already exists". A
//! test can merge or close a pull request ([`FakeGithub::merge`], [`FakeGithub::close`]):
//! `GET /repos/{owner}/{repo}/pulls/{number}` then answers as GitHub does for it (`state`,
//! `merged`, `merged_at`, `closed_at`), and the list no longer shows it. `PATCH` of a pull
//! request (title, body) is recorded.

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
    /// Every create request, the refused duplicates (422) included.
    create_attempts: usize,
    /// The bodies of the create requests that opened a pull request.
    created: Vec<Value>,
    /// Pull requests no longer open: number -> (head branch, merged).
    settled: HashMap<u64, (String, bool)>,
    /// PATCH requests: (number, body).
    updates: Vec<(u64, Value)>,
    /// GET requests of single pull requests, by number.
    state_reads: Vec<u64>,
    /// Open pull requests that no longer merge cleanly (`mergeable: false`).
    conflicting: std::collections::HashSet<u64>,
    /// Comments posted: (number, body).
    comments: Vec<(u64, String)>,
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
        Mock::given(method("GET"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls/\d+$"))
            .respond_with(StateReader(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("PATCH"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/pulls/\d+$"))
            .respond_with(Updater(self.clone()))
            .mount(server)
            .await;
        Mock::given(method("POST"))
            .and(path_regex(r"^/repos/[^/]+/[^/]+/issues/\d+/comments$"))
            .respond_with(Commenter(self.clone()))
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

    /// Create requests received, including the ones refused as duplicates.
    pub fn create_attempts(&self) -> usize {
        self.state.lock().unwrap().create_attempts
    }

    /// The create requests that opened a pull request, as sent (title, body, draft, ...).
    pub fn created(&self) -> Vec<Value> {
        self.state.lock().unwrap().created.clone()
    }

    /// The PATCH requests of pull requests: (number, body as sent).
    pub fn updates(&self) -> Vec<(u64, Value)> {
        self.state.lock().unwrap().updates.clone()
    }

    /// The numbers of the pull requests whose state was read, in order.
    pub fn state_reads(&self) -> Vec<u64> {
        self.state.lock().unwrap().state_reads.clone()
    }

    /// The base moved: pull request `number` no longer merges cleanly.
    pub fn set_conflicting(&self, number: u64, conflicting: bool) {
        let mut state = self.state.lock().unwrap();
        if conflicting {
            state.conflicting.insert(number);
        } else {
            state.conflicting.remove(&number);
        }
    }

    /// Comments posted on pull requests: (number, body).
    pub fn comments(&self) -> Vec<(u64, String)> {
        self.state.lock().unwrap().comments.clone()
    }

    /// A maintainer merges pull request `number`.
    pub fn merge(&self, number: u64) {
        self.settle(number, true);
    }

    /// A maintainer closes pull request `number` without merging.
    pub fn close(&self, number: u64) {
        self.settle(number, false);
    }

    fn settle(&self, number: u64, merged: bool) {
        let mut state = self.state.lock().unwrap();
        let branch = state
            .open
            .iter()
            .find(|(_, n)| **n == number)
            .map(|(b, _)| b.clone())
            .unwrap_or_else(|| panic!("pull request {number} is not open"));
        state.open.remove(&branch);
        state.settled.insert(number, (branch, merged));
    }
}

fn number_in(request: &Request) -> u64 {
    request
        .url
        .path()
        .rsplit('/')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_default()
}

struct StateReader(FakeGithub);

impl Respond for StateReader {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let number = number_in(request);
        let mut state = self.0.state.lock().unwrap();
        state.state_reads.push(number);
        if let Some((branch, _)) = state.open.iter().find(|(_, n)| **n == number) {
            let mut pull = pr_json(number, branch);
            pull["mergeable"] = json!(!state.conflicting.contains(&number));
            pull["merged"] = json!(false);
            pull["merged_at"] = Value::Null;
            pull["closed_at"] = Value::Null;
            return ResponseTemplate::new(200).set_body_json(pull);
        }
        match state.settled.get(&number) {
            Some((branch, merged)) => {
                let mut pull = pr_json(number, branch);
                pull["state"] = json!("closed");
                pull["merged"] = json!(merged);
                pull["closed_at"] = json!("2026-12-01T09:30:00Z");
                pull["merged_at"] = if *merged {
                    json!("2026-12-01T09:30:00Z")
                } else {
                    Value::Null
                };
                ResponseTemplate::new(200).set_body_json(pull)
            }
            None => ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"})),
        }
    }
}

struct Commenter(FakeGithub);

impl Respond for Commenter {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let number: u64 = request
            .url
            .path()
            .split('/')
            .rev()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let text = body["body"].as_str().unwrap_or_default().to_owned();
        self.0.state.lock().unwrap().comments.push((number, text));
        ResponseTemplate::new(201).set_body_json(json!({"id": 1, "body": body["body"]}))
    }
}

struct Updater(FakeGithub);

impl Respond for Updater {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        let number = number_in(request);
        let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
        let mut state = self.0.state.lock().unwrap();
        let Some(branch) = state
            .open
            .iter()
            .find(|(_, n)| **n == number)
            .map(|(b, _)| b.clone())
        else {
            return ResponseTemplate::new(404).set_body_json(json!({"message": "Not Found"}));
        };
        state.updates.push((number, body));
        ResponseTemplate::new(200).set_body_json(pr_json(number, &branch))
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
        state.create_attempts += 1;
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
