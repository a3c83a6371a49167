//! The browser APIs the SDK uses, wrapped thinly for Rust: IndexedDB ([`idb`]) and WebCrypto
//! ([`subtle`]). They work in pages and in workers (the global scope is looked up, not assumed
//! to be `window`).

pub(crate) mod idb;
pub(crate) mod subtle;
pub(crate) mod webauthn;

use js_sys::{Function, Promise, Reflect};
use wasm_bindgen::{JsCast, JsValue};

use crate::SdkError;

/// A property of the global object (`window` or `self`), if it is an object of type `T`.
pub(crate) fn global<T: JsCast>(name: &str) -> Result<T, SdkError> {
    Reflect::get(&js_sys::global(), &JsValue::from_str(name))
        .ok()
        .and_then(|value| value.dyn_into::<T>().ok())
        .ok_or_else(|| SdkError::Unsupported(format!("this environment has no {name}")))
}

/// Calls `object.method(...args)` and awaits the promise it returns.
pub(crate) async fn call_async(
    object: &JsValue,
    method: &str,
    args: &[&JsValue],
) -> Result<JsValue, JsValue> {
    let function: Function = Reflect::get(object, &JsValue::from_str(method))?.dyn_into()?;
    let array = args.iter().copied().collect::<js_sys::Array>();
    let promise: Promise = function.apply(object, &array)?.dyn_into()?;
    wasm_bindgen_futures::JsFuture::from(promise).await
}

/// The message of a JS exception, for error messages (never holds secrets: browser API errors).
pub(crate) fn describe(error: &JsValue) -> String {
    error
        .dyn_ref::<js_sys::Error>()
        .map(|error| {
            format!(
                "{}: {}",
                String::from(error.name()),
                String::from(error.message())
            )
        })
        .or_else(|| error.as_string())
        .unwrap_or_else(|| "unknown error".to_owned())
}

/// An HTTP response, as far as the client needs it.
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    /// The `Date` header, parsed (milliseconds since the epoch), if present and readable.
    pub(crate) date_ms: Option<f64>,
    pub(crate) body: String,
}

/// `fetch(url, { method, headers, body })`; fails with `Network` when no response arrives.
pub(crate) async fn fetch(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<HttpResponse, SdkError> {
    let network = |error: JsValue| SdkError::Network(describe(&error));
    let init = js_sys::Object::new();
    let header_object = js_sys::Object::new();
    for (name, value) in headers {
        Reflect::set(&header_object, &(*name).into(), &(*value).into()).map_err(network)?;
    }
    Reflect::set(&init, &"method".into(), &method.into()).map_err(network)?;
    Reflect::set(&init, &"headers".into(), &header_object).map_err(network)?;
    // The request token is the only credential: never send cookies. Never follow a redirect:
    // it would resend the body (an MPC message) to wherever the redirect points.
    Reflect::set(&init, &"credentials".into(), &"omit".into()).map_err(network)?;
    Reflect::set(&init, &"redirect".into(), &"error".into()).map_err(network)?;
    if let Some(body) = body {
        Reflect::set(&init, &"body".into(), &body.into()).map_err(network)?;
    }
    let response = call_async(&js_sys::global(), "fetch", &[&url.into(), &init])
        .await
        .map_err(network)?;
    let status = Reflect::get(&response, &"status".into())
        .ok()
        .and_then(|status| status.as_f64())
        .map_or(0, |status| status as u16);
    let headers = Reflect::get(&response, &"headers".into()).map_err(network)?;
    let get: Function = Reflect::get(&headers, &"get".into())
        .map_err(network)?
        .dyn_into()
        .map_err(network)?;
    let date_ms = get
        .call1(&headers, &"date".into())
        .ok()
        .and_then(|date| date.as_string())
        .map(|date| js_sys::Date::parse(&date))
        .filter(|ms| ms.is_finite());
    let body = call_async(&response, "text", &[])
        .await
        .map_err(network)?
        .as_string()
        .unwrap_or_default();
    Ok(HttpResponse {
        status,
        date_ms,
        body,
    })
}

/// Resolves after `ms` milliseconds (`setTimeout`).
pub(crate) async fn sleep(ms: f64) {
    let promise = Promise::new(&mut |resolve, _| {
        let global = js_sys::global();
        if let Ok(set_timeout) = Reflect::get(&global, &"setTimeout".into())
            .and_then(|value| value.dyn_into::<Function>())
        {
            let _ = set_timeout.call2(&global, &resolve, &ms.into());
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A held Web Lock (`navigator.locks`): released when dropped. Tabs of one origin that take the
/// same name run one at a time.
pub(crate) struct WebLock {
    release: Option<Function>,
}

impl WebLock {
    /// Waits for the lock `name`. Without the Locks API (old browsers, Node) there is no lock
    /// across tabs, and the store's insert-only writes are what keeps two runs apart.
    pub(crate) async fn acquire(name: &str) -> Result<Self, SdkError> {
        let navigator =
            Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or(JsValue::UNDEFINED);
        let locks = Reflect::get(&navigator, &"locks".into()).unwrap_or(JsValue::UNDEFINED);
        if !locks.is_object() {
            return Ok(Self { release: None });
        }
        // The lock is held until the promise the callback returns settles: hand its resolver out.
        let mut release: Option<Function> = None;
        let held = Promise::new(&mut |resolve, _| release = Some(resolve));
        let (acquired_promise, acquired) = {
            let mut acquired: Option<Function> = None;
            let promise = Promise::new(&mut |resolve, _| acquired = Some(resolve));
            (promise, acquired)
        };
        let acquired = acquired.ok_or_else(|| SdkError::Unsupported("Promise".into()))?;
        let callback = wasm_bindgen::closure::Closure::once_into_js(move |_lock: JsValue| {
            let _ = acquired.call0(&JsValue::NULL);
            held
        });
        let request: Function = Reflect::get(&locks, &"request".into())
            .and_then(|value| value.dyn_into())
            .map_err(|error| SdkError::Unsupported(describe(&error)))?;
        request
            .call2(&locks, &name.into(), &callback)
            .map_err(|error| SdkError::Storage(describe(&error)))?;
        wasm_bindgen_futures::JsFuture::from(acquired_promise)
            .await
            .map_err(|error| SdkError::Storage(describe(&error)))?;
        Ok(Self { release })
    }
}

impl Drop for WebLock {
    fn drop(&mut self) {
        if let Some(release) = self.release.take() {
            let _ = release.call0(&JsValue::NULL);
        }
    }
}
