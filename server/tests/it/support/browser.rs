//! Debian's headless Chromium, driven through chromedriver's W3C WebDriver endpoints: the
//! handful of commands the console's tests use, over plain HTTP.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

pub struct Browser {
    driver: Child,
    base: String,
    http: reqwest::Client,
}

/// An element of the current page.
#[derive(Clone)]
pub struct Element(String);

impl Browser {
    /// A new browser window, `width` pixels wide.
    pub async fn start(width: u32) -> Self {
        assert!(
            std::path::Path::new(CHROMEDRIVER).exists(),
            "the console's browser tests need Debian's chromium and chromium-driver \
             (apt-get install chromium chromium-driver; scripts/test installs them)"
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut browser = Self {
            driver,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
        };
        let started = Instant::now();
        while browser
            .http
            .get(format!("{}/status", browser.base))
            .send()
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let mut options = json!({"binary": CHROMIUM, "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu",
            "--disable-dev-shm-usage", format!("--window-size={width},900"),
        ]});
        // A window is never narrower than 500 px: a phone's width is emulated instead.
        if width < 500 {
            options["mobileEmulation"] =
                json!({"deviceMetrics": {"width": width, "height": 812, "pixelRatio": 1.0}});
        }
        let session = browser
            .command(
                reqwest::Method::POST,
                "/session",
                json!({"capabilities": {"alwaysMatch": {
                    "browserName": "chrome",
                    "goog:chromeOptions": options,
                }}}),
            )
            .await
            .unwrap();
        browser.base = format!(
            "{}/session/{}",
            browser.base,
            session["sessionId"].as_str().unwrap()
        );
        browser
    }

    async fn command(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Value,
    ) -> Result<Value, Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        if method != reqwest::Method::GET && method != reqwest::Method::DELETE {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let ok = response.status().is_success();
        let value: Value = response.json().await.unwrap();
        if ok {
            Ok(value["value"].clone())
        } else {
            Err(value["value"].clone())
        }
    }

    async fn expect(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        match self.command(method, path, body).await {
            Ok(value) => value,
            Err(error) => panic!("WebDriver {path}: {error}"),
        }
    }

    pub async fn go(&self, url: &str) {
        self.expect(reqwest::Method::POST, "/url", json!({ "url": url }))
            .await;
    }

    pub async fn url(&self) -> String {
        self.expect(reqwest::Method::GET, "/url", Value::Null)
            .await
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The first element matching `css`, if the page has one now.
    pub async fn find(&self, css: &str) -> Option<Element> {
        self.command(
            reqwest::Method::POST,
            "/element",
            json!({"using": "css selector", "value": css}),
        )
        .await
        .ok()
        .map(|value| Element(value[ELEMENT].as_str().unwrap().to_owned()))
    }

    /// The first element matching `css`, waiting up to ten seconds for it.
    pub async fn wait_for(&self, css: &str) -> Element {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                return element;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "no {css} on {}:\n{}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits up to `seconds` until the text of `css` satisfies `ready`, and returns it.
    pub async fn wait_for_text(
        &self,
        css: &str,
        seconds: u64,
        ready: impl Fn(&str) -> bool,
    ) -> String {
        let started = Instant::now();
        loop {
            if let Some(element) = self.find(css).await {
                if let Ok(text) = self
                    .command(
                        reqwest::Method::GET,
                        &format!("/element/{}/text", element.0),
                        Value::Null,
                    )
                    .await
                {
                    let text = text.as_str().unwrap_or("").to_owned();
                    if ready(&text) {
                        return text;
                    }
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(seconds),
                "{css} never showed what was expected on {}:\n{}",
                self.url().await,
                self.text("body").await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The visible text of the first element matching `css`, or "" when there is none.
    pub async fn text(&self, css: &str) -> String {
        let Some(element) = self.find(css).await else {
            return String::new();
        };
        self.command(
            reqwest::Method::GET,
            &format!("/element/{}/text", element.0),
            Value::Null,
        )
        .await
        .ok()
        .and_then(|text| text.as_str().map(str::to_owned))
        .unwrap_or_default()
    }

    pub async fn click(&self, css: &str) {
        let element = self.wait_for(css).await;
        self.expect(
            reqwest::Method::POST,
            &format!("/element/{}/click", element.0),
            json!({}),
        )
        .await;
    }

    /// Types `text` into the field `css` (a file input takes a path).
    pub async fn type_into(&self, css: &str, text: &str) {
        let element = self.wait_for(css).await;
        self.expect(
            reqwest::Method::POST,
            &format!("/element/{}/value", element.0),
            json!({ "text": text }),
        )
        .await;
    }

    /// Runs `script` in the page and answers what it returns.
    pub async fn run(&self, script: &str) -> Value {
        self.expect(
            reqwest::Method::POST,
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
        .await
    }

    /// The cookies the browser holds for the current page, as WebDriver lists them (`name`,
    /// `value`, `httpOnly`, `sameSite`, ...): those its scripts cannot see too.
    pub async fn cookies(&self) -> Vec<Value> {
        self.expect(reqwest::Method::GET, "/cookie", Value::Null)
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Presses and releases `key` (a WebDriver key code, such as `\u{E004}` for Tab) on
    /// whatever has the focus.
    pub async fn press(&self, key: &str) {
        self.expect(
            reqwest::Method::POST,
            "/actions",
            json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key},
            ]}]}),
        )
        .await;
        self.expect(reqwest::Method::DELETE, "/actions", Value::Null)
            .await;
    }

    /// The text of an open alert, if a script opened one.
    pub async fn alert(&self) -> Option<String> {
        self.command(reqwest::Method::GET, "/alert/text", Value::Null)
            .await
            .ok()
            .and_then(|text| text.as_str().map(str::to_owned))
    }

    /// A PNG of the window.
    pub async fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let data = self
            .expect(reqwest::Method::GET, "/screenshot", Value::Null)
            .await;
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    /// Ends the session (which closes Chromium) before stopping chromedriver, even when the
    /// test panicked: a blocking request, as nothing can be awaited here.
    fn drop(&mut self) {
        use std::io::{Read, Write};
        if let Some((address, path)) = self
            .base
            .strip_prefix("http://")
            .and_then(|rest| rest.split_once('/'))
        {
            if let Ok(mut stream) = std::net::TcpStream::connect(address) {
                let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
                let _ = write!(
                    stream,
                    "DELETE /{path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
                );
                let _ = stream.read_to_end(&mut Vec::new());
            }
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
