//! A real browser for the dashboard tests: Debian's headless Chromium driven
//! through its ChromeDriver (W3C WebDriver) with `fantoccini`.
//!
//! [`Browser::start`] runs `/usr/bin/chromedriver` (or `$FUSION_CHROMEDRIVER`;
//! `scripts/setup` installs the packages `chromium` and `chromium-driver`) on
//! a free port, in its own process group, and opens one session: headless,
//! a fresh profile in a temporary folder, a laptop-sized window, and the flags
//! this network needs (no background networking, no sync, no component
//! updates, no QUIC). Dropping the browser ends the session's processes.
//!
//! Screenshots go to [`screenshot_dir`]: `$FUSION_SCREENSHOT_DIR`, else
//! `$CARGO_TARGET_DIR/screenshots`, else `target/screenshots` in the
//! repository; each saved path is printed.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use tempfile::TempDir;

/// Where ChromeDriver is.
pub fn chromedriver_path() -> PathBuf {
    std::env::var_os("FUSION_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromedriver"))
}

/// Where Chromium is (ChromeDriver would look for Google Chrome).
pub fn chromium_path() -> PathBuf {
    std::env::var_os("FUSION_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

/// Where screenshots are saved (created on first use).
pub fn screenshot_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FUSION_SCREENSHOT_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::repo_root().join("target"));
    target.join("screenshots")
}

/// Window size: a common laptop screen.
pub const WINDOW: (u32, u32) = (1440, 900);

/// Chromium's command-line flags: headless, as root in a container, and
/// quiet on a closed network.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-sync",
    "--disable-component-update",
    "--disable-quic",
    "--hide-scrollbars",
    "--lang=en-GB",
];

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free local port")
}

/// A ChromeDriver process and one browser session on it.
pub struct Browser {
    client: Client,
    /// Window size less viewport size (the browser's own frame).
    frame: (u32, u32),
    driver: Child,
    base: String,
    _profile: TempDir,
}

impl Browser {
    /// Starts ChromeDriver and a headless Chromium; `base` is the app's
    /// address (`http://127.0.0.1:PORT`), prefixed to the paths given to
    /// [`Browser::goto`].
    pub async fn start(base: &str) -> Self {
        let driver_path = chromedriver_path();
        assert!(
            driver_path.exists(),
            "{} not found: run ./scripts/setup (it installs Debian's chromium and chromium-driver)",
            driver_path.display()
        );
        let port = free_port();
        let mut command = Command::new(&driver_path);
        command
            .arg(format!("--port={port}"))
            .arg("--allowed-ips=127.0.0.1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so Drop can end ChromeDriver and every
        // Chromium process it started together.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command.spawn().expect("start chromedriver");
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_for_port(port, Duration::from_secs(20));

        let profile = tempfile::tempdir().expect("temporary Chromium profile");
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
        let mut caps = serde_json::Map::new();
        caps.insert("browserName".into(), json!("chrome"));
        caps.insert(
            "goog:chromeOptions".into(),
            json!({ "binary": chromium_path(), "args": args }),
        );
        // Hand the process over before connecting, so it is ended even if
        // the session cannot be created.
        let mut pending = PendingDriver(Some(driver));
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps)
            .connect(&webdriver)
            .await
            .unwrap_or_else(|e| panic!("cannot open a Chromium session on {webdriver}: {e}"));
        // `--window-size` sizes the window; make the page's viewport (what
        // screenshots show) the laptop screen instead.
        let frame = client
            .execute(
                "return [window.outerWidth - window.innerWidth, \
                         window.outerHeight - window.innerHeight]",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| serde_json::from_value::<(u32, u32)>(v).ok())
            .unwrap_or((0, 0));
        client
            .set_window_size(WINDOW.0 + frame.0, WINDOW.1 + frame.1)
            .await
            .expect("size the window");
        Self {
            client,
            frame,
            driver: pending.take(),
            base: base.trim_end_matches('/').to_owned(),
            _profile: profile,
        }
    }

    /// The WebDriver client, for anything the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Opens `path` on the app (or a full URL).
    pub async fn goto(&self, path: &str) {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        };
        self.client.goto(&url).await.expect("navigate");
    }

    /// The path (and query) of the current page.
    pub async fn path(&self) -> String {
        let url = self.client.current_url().await.expect("current URL");
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// The element matching a CSS selector, waiting up to 10 s for it.
    pub async fn find(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!("no element {css:?} on {}: {e}", self.path().await),
        }
    }

    /// Whether an element matches a CSS selector now.
    pub async fn exists(&self, css: &str) -> bool {
        !self
            .client
            .find_all(Locator::Css(css))
            .await
            .expect("find elements")
            .is_empty()
    }

    /// Replaces a field's value by typing, as a person would.
    pub async fn fill(&self, css: &str, value: &str) {
        let field = self.find(css).await;
        field.clear().await.expect("clear field");
        field.send_keys(value).await.expect("type into field");
    }

    /// Clicks an element that leads to another page (a link, a form's
    /// button) and waits, up to 10 s, for that page to load.
    pub async fn click(&self, css: &str) {
        // Mark the current document: the next one will not have the mark.
        self.client
            .execute("window.__fusionOld = true; return true", vec![])
            .await
            .expect("mark the page");
        self.find(css).await.click().await.expect("click");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let loaded = self
                .client
                .execute(
                    "return !window.__fusionOld && document.readyState === 'complete'",
                    vec![],
                )
                .await
                .ok()
                .and_then(|v| v.as_bool())
                .unwrap_or(false);
            if loaded {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "clicking {css:?} led to no new page"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The visible text of the first element matching a CSS selector.
    pub async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.expect("element text")
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.client.title().await.expect("title")
    }

    /// Signs in through the login form (`/login`) and waits for the page
    /// it leads to.
    pub async fn sign_in(&self, username: &str, password: &str) {
        self.goto("/login").await;
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("#sign-in").await;
    }

    /// Signs out with the header's button.
    pub async fn sign_out(&self) {
        self.click("#sign-out").await;
    }

    /// Saves a PNG of the window as `<screenshot_dir>/<name>.png`, prints
    /// and returns its path.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.client.screenshot().await.expect("screenshot");
        save_png(name, &png)
    }

    /// Saves a PNG of the whole page, however long, by growing the window
    /// to the document's height for the shot.
    pub async fn screenshot_full(&self, name: &str) -> PathBuf {
        let height = self
            .client
            .execute(
                "return Math.ceil(document.documentElement.scrollHeight)",
                vec![],
            )
            .await
            .ok()
            .and_then(|v| v.as_u64())
            .unwrap_or(u64::from(WINDOW.1));
        let height = u32::try_from(height.clamp(u64::from(WINDOW.1), 6000)).unwrap_or(WINDOW.1);
        let (fw, fh) = self.frame;
        self.client
            .set_window_size(WINDOW.0 + fw, height + fh)
            .await
            .expect("resize");
        let png = self.client.screenshot().await.expect("screenshot");
        self.client
            .set_window_size(WINDOW.0 + fw, WINDOW.1 + fh)
            .await
            .expect("resize back");
        save_png(name, &png)
    }

    /// Runs axe-core (`.test-data/axe/axe.min.js`, from `scripts/fetch-axe`)
    /// on the current page with the WCAG 2.1 A and AA rules, and returns the
    /// serious and critical violations as `rule: target (summary)` lines
    /// (empty when the page passes). Colour contrast is among the rules.
    pub async fn accessibility_violations(&self) -> Vec<String> {
        let path = crate::repo_root().join(".test-data/axe/axe.min.js");
        let source = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-axe)", path.display()));
        self.client
            .execute(&format!("{source}\nreturn true;"), vec![])
            .await
            .expect("load axe-core");
        let result = self
            .client
            .execute_async(
                "const done = arguments[0]; \
                 axe.run(document, { runOnly: { type: 'tag', \
                   values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] } }) \
                 .then(r => done(r.violations \
                   .filter(v => v.impact === 'serious' || v.impact === 'critical') \
                   .flatMap(v => v.nodes.map(n => v.id + ': ' + n.target.join(' ') + ' (' \
                     + (n.failureSummary || '').replace(/\\s+/g, ' ').slice(0, 200) + ')'))), \
                   e => done(['axe failed: ' + e]));",
                vec![],
            )
            .await
            .expect("run axe-core");
        result
            .as_array()
            .map(|v| {
                v.iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Ends the browser session; dropping the browser then ends its
    /// processes (as it does on its own after a failed test).
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        end_group(&mut self.driver);
    }
}

fn save_png(name: &str, png: &[u8]) -> PathBuf {
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("create the screenshot folder");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, png).expect("write screenshot");
    println!("screenshot: {}", path.display());
    path
}

fn wait_for_port(port: u16, limit: Duration) {
    let deadline = Instant::now() + limit;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "chromedriver did not listen on port {port}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Ends the process group of `child` (ChromeDriver and its Chromium):
/// SIGTERM, then SIGKILL after 3 s; gives up waiting after 6 s in all.
fn end_group(child: &mut Child) {
    let group = format!("-{}", child.id());
    let signal = |name: &str| {
        let _ = Command::new("kill")
            .args(["-s", name, "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    };
    let exited = |child: &mut Child, limit: Duration| {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    };
    if !matches!(child.try_wait(), Ok(None)) {
        return;
    }
    signal("TERM");
    if !exited(child, Duration::from_secs(3)) {
        signal("KILL");
        exited(child, Duration::from_secs(3));
    }
}

/// ChromeDriver between spawn and a working session.
struct PendingDriver(Option<Child>);

impl PendingDriver {
    fn take(&mut self) -> Child {
        self.0.take().expect("driver present")
    }
}

impl Drop for PendingDriver {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            end_group(child);
        }
    }
}

/// Whether a PNG file has the window's size (a quick sanity check).
pub fn png_size(path: &Path) -> (u32, u32) {
    let decoder = png::Decoder::new(std::io::BufReader::new(
        std::fs::File::open(path).expect("open PNG"),
    ));
    let reader = decoder.read_info().expect("PNG header");
    let info = reader.info();
    (info.width, info.height)
}
