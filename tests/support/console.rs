//! A browser-less client of the operations console: logs in through the form (nonce cookie and
//! all), keeps the session cookie, reads the CSRF token from a page, and posts forms, with
//! redirects left visible.

use reqwest::redirect::Policy;

use super::app::TestApp;

pub struct ConsoleClient {
    pub base_url: String,
    pub http: reqwest::Client,
    /// `remediator_console=<token>`, as the browser would send it.
    pub cookie: Option<String>,
}

pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of the first hidden field `name`.
    pub fn field(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(self.body[start..end].to_owned())
    }

    pub fn csrf(&self) -> String {
        self.field("csrf").expect("the page carries a CSRF token")
    }

    pub fn set_cookies(&self) -> Vec<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .collect()
    }

    pub fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }
}

impl ConsoleClient {
    pub fn new(app: &TestApp) -> ConsoleClient {
        ConsoleClient {
            base_url: app.base_url.clone(),
            http: reqwest::Client::builder()
                .redirect(Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    /// Logs in with `token`; panics unless the console accepted it.
    pub async fn logged_in(app: &TestApp, token: &str) -> ConsoleClient {
        let mut client = ConsoleClient::new(app);
        let page = client.login(token).await;
        assert_eq!(page.status, 303, "login refused: {}", page.body);
        client
    }

    /// Submits the login form as a browser would: GET the form (nonce cookie and field), POST
    /// it back with the token. Keeps the session cookie it sets.
    pub async fn login(&mut self, token: &str) -> Page {
        let form = self.get("/console/login").await;
        assert_eq!(form.status, 200);
        let nonce = form.field("login_csrf").expect("login nonce");
        let cookie = form
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("remediator_console_login="))
            .expect("nonce cookie");
        let nonce_cookie = cookie.split(';').next().unwrap().to_owned();
        let page = self
            .send(
                self.http
                    .post(format!("{}/console/login", self.base_url))
                    .header("cookie", nonce_cookie)
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(encode(&[("login_csrf", &nonce), ("token", token)])),
            )
            .await;
        if let Some(session) = page
            .set_cookies()
            .into_iter()
            .find(|c| c.starts_with("remediator_console="))
        {
            self.cookie = Some(session.split(';').next().unwrap().to_owned());
        }
        page
    }

    pub async fn get(&self, path: &str) -> Page {
        let mut request = self.http.get(format!("{}{}", self.base_url, path));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        self.send(request).await
    }

    /// POSTs a form (`csrf` included by the caller when wanted).
    pub async fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_with(path, fields, &[]).await
    }

    pub async fn post_with(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut request = self
            .http
            .post(format!("{}{}", self.base_url, path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(encode(fields));
        if let Some(cookie) = &self.cookie {
            request = request.header("cookie", cookie);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        self.send(request).await
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Page {
        let response = request.send().await.expect("console request");
        Page {
            status: response.status().as_u16(),
            headers: response.headers().clone(),
            body: response.text().await.unwrap_or_default(),
        }
    }
}

pub fn encode(fields: &[(&str, &str)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (k, v) in fields {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}
