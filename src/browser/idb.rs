//! IndexedDB, as the key store needs it: one database per origin, a few object stores, reads and
//! atomic multi-record writes. Requests become futures through their success and error events.
//!
//! A transaction stays usable only while requests on it are pending or their events are being
//! handled, so a transaction here never awaits anything but its own requests: callers compute
//! first (WebCrypto, Argon2id), then write.

use js_sys::{Array, Promise};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{IdbDatabase, IdbFactory, IdbRequest, IdbTransaction, IdbTransactionMode};

use super::{describe, global};
use crate::SdkError;

/// An open database.
pub(crate) struct Database {
    db: IdbDatabase,
}

/// The object stores of the key store's database.
pub(crate) const STORES: &[&str] = &["keys", "records", "meta"];

/// Waits for a request's success (its result) or error.
async fn settled(request: &IdbRequest) -> Result<JsValue, SdkError> {
    let promise = Promise::new(&mut |resolve, reject| {
        let on_success = Closure::once_into_js(move |event: web_sys::Event| {
            let result = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .map_or(Ok(JsValue::UNDEFINED), |request| request.result());
            match result {
                Ok(value) => resolve.call1(&JsValue::NULL, &value),
                Err(error) => resolve.call1(&JsValue::NULL, &error),
            }
        });
        let on_error = Closure::once_into_js(move |event: web_sys::Event| {
            let error = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .and_then(|request| request.error().ok().flatten())
                .map_or(JsValue::NULL, JsValue::from);
            reject.call1(&JsValue::NULL, &error)
        });
        request.set_onsuccess(Some(on_success.unchecked_ref()));
        request.set_onerror(Some(on_error.unchecked_ref()));
    });
    JsFuture::from(promise)
        .await
        .map_err(|error| SdkError::Storage(describe(&error)))
}

/// Waits for a transaction to commit. A failed request aborts its transaction, and the abort
/// event comes once, however many requests failed; so only `complete` and `abort` are listened
/// to (an `error` handler would run once per failed request).
async fn committed(transaction: &IdbTransaction) -> Result<(), SdkError> {
    let promise = Promise::new(&mut |resolve, reject| {
        let on_complete = Closure::once_into_js(move || resolve.call0(&JsValue::NULL));
        let on_abort = Closure::once_into_js(move |event: web_sys::Event| {
            let reason = event
                .target()
                .and_then(|target| target.dyn_into::<IdbTransaction>().ok())
                .and_then(|transaction| transaction.error())
                .map_or_else(
                    || "the transaction was aborted".to_owned(),
                    |error| error.name(),
                );
            reject.call1(&JsValue::NULL, &JsValue::from_str(&reason))
        });
        transaction.set_oncomplete(Some(on_complete.unchecked_ref()));
        transaction.set_onabort(Some(on_abort.unchecked_ref()));
    });
    JsFuture::from(promise)
        .await
        .map(drop)
        .map_err(|error| SdkError::Storage(describe(&error)))
}

fn storage(error: JsValue) -> SdkError {
    SdkError::Storage(describe(&error))
}

impl Database {
    /// Opens (creating, on first use) the database `name` with the key store's object stores.
    pub(crate) async fn open(name: &str) -> Result<Self, SdkError> {
        let factory: IdbFactory = global("indexedDB")?;
        let request = factory.open_with_u32(name, 1).map_err(storage)?;
        let on_upgrade = Closure::once_into_js(move |event: web_sys::IdbVersionChangeEvent| {
            let db = event
                .target()
                .and_then(|target| target.dyn_into::<IdbRequest>().ok())
                .and_then(|request| request.result().ok())
                .and_then(|db| db.dyn_into::<IdbDatabase>().ok());
            if let Some(db) = db {
                for store in STORES {
                    // Errors here abort the upgrade, which fails the open request.
                    let _ = db.create_object_store(store);
                }
            }
        });
        request.set_onupgradeneeded(Some(on_upgrade.unchecked_ref()));
        let db: IdbDatabase = settled(&request).await?.dyn_into().map_err(storage)?;
        Ok(Self { db })
    }

    /// Reads one value (`None` if absent).
    pub(crate) async fn get(&self, store: &str, key: &str) -> Result<Option<JsValue>, SdkError> {
        let transaction = self.db.transaction_with_str(store).map_err(storage)?;
        let request = transaction
            .object_store(store)
            .and_then(|store| store.get(&JsValue::from_str(key)))
            .map_err(storage)?;
        let value = settled(&request).await?;
        Ok((!value.is_undefined()).then_some(value))
    }

    /// Every key of `store` (string keys only).
    pub(crate) async fn keys(&self, store: &str) -> Result<Vec<String>, SdkError> {
        let transaction = self.db.transaction_with_str(store).map_err(storage)?;
        let request = transaction
            .object_store(store)
            .and_then(|store| store.get_all_keys())
            .map_err(storage)?;
        let keys = settled(&request).await?;
        Ok(js_sys::Array::from(&keys)
            .iter()
            .filter_map(|key| key.as_string())
            .collect())
    }

    /// Reads several values in one transaction (one snapshot), in the order asked.
    pub(crate) async fn get_many(
        &self,
        entries: &[(&str, &str)],
    ) -> Result<Vec<Option<JsValue>>, SdkError> {
        let transaction = self.transaction(entries.iter().map(|(store, _)| *store), false)?;
        let requests = entries
            .iter()
            .map(|(store, key)| {
                transaction
                    .object_store(store)
                    .and_then(|store| store.get(&JsValue::from_str(key)))
                    .map_err(storage)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut values = Vec::with_capacity(requests.len());
        for request in &requests {
            let value = settled(request).await?;
            values.push((!value.is_undefined()).then_some(value));
        }
        Ok(values)
    }

    /// Writes one value, replacing any.
    pub(crate) async fn put(
        &self,
        store: &str,
        key: &str,
        value: &JsValue,
    ) -> Result<(), SdkError> {
        let transaction = self.transaction(std::iter::once(store), true)?;
        transaction
            .object_store(store)
            .and_then(|store| store.put_with_key(value, &JsValue::from_str(key)))
            .map_err(storage)?;
        committed(&transaction).await
    }

    /// Deletes one value (nothing if absent).
    #[cfg(feature = "rare-flows")]
    pub(crate) async fn delete(&self, store: &str, key: &str) -> Result<(), SdkError> {
        let transaction = self.transaction(std::iter::once(store), true)?;
        transaction
            .object_store(store)
            .and_then(|store| store.delete(&JsValue::from_str(key)))
            .map_err(storage)?;
        committed(&transaction).await
    }

    /// Reads one value and writes `change(value)` in its place, in one transaction, so a write
    /// of another tab in between is never lost. `change` must not await (nothing but this
    /// transaction's requests may run inside it); an error from it writes nothing. (`dyn`: one
    /// copy of the transaction's code for every caller.)
    pub(crate) async fn update(
        &self,
        store: &str,
        key: &str,
        change: &mut dyn FnMut(Option<JsValue>) -> Result<JsValue, SdkError>,
    ) -> Result<(), SdkError> {
        let transaction = self.transaction(std::iter::once(store), true)?;
        let object_store = transaction.object_store(store).map_err(storage)?;
        let key = JsValue::from_str(key);
        let current = settled(&object_store.get(&key).map_err(storage)?).await?;
        match change((!current.is_undefined()).then_some(current)) {
            Ok(value) => {
                object_store.put_with_key(&value, &key).map_err(storage)?;
                committed(&transaction).await
            }
            Err(error) => {
                let _ = transaction.abort();
                Err(error)
            }
        }
    }

    /// Adds several values atomically; fails (with a `ConstraintError`, nothing written) if any
    /// key exists already.
    pub(crate) async fn insert_many(
        &self,
        entries: &[(&str, &str, &JsValue)],
    ) -> Result<(), SdkError> {
        let transaction = self.transaction(entries.iter().map(|(store, _, _)| *store), true)?;
        for (store, key, value) in entries {
            transaction
                .object_store(store)
                .and_then(|store| store.add_with_key(value, &JsValue::from_str(key)))
                .map_err(storage)?;
        }
        committed(&transaction).await
    }

    fn transaction<'a>(
        &self,
        stores: impl Iterator<Item = &'a str>,
        write: bool,
    ) -> Result<IdbTransaction, SdkError> {
        let mut names: Vec<&str> = stores.collect();
        names.sort_unstable();
        names.dedup();
        let names: Array = names.into_iter().map(JsValue::from_str).collect();
        let mode = if write {
            IdbTransactionMode::Readwrite
        } else {
            IdbTransactionMode::Readonly
        };
        self.db
            .transaction_with_str_sequence_and_mode(&names, mode)
            .map_err(storage)
    }
}
