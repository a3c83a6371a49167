//! RegisterDevice, GetDevice, CreatePool, GetPool.

use waas_api::resources::{CreatePoolRequest, Device, Pool};
use waas_api::{DeviceName, ErrorCode, PoolName, ResourceId};

use super::{Services, ensure_acts_for, hex0x};
use crate::ApiError;
use crate::auth::{Principal, verify_registration};
use crate::store::{DeviceRecord, PoolRecord, Store};
use crate::time::{now_ms, rfc3339_ms};

fn device_resource(record: DeviceRecord) -> Device {
    Device {
        name: record.name,
        state: record.state,
        archive_public_key: hex0x(&record.archive_public_key),
        create_time: rfc3339_ms(record.create_time_ms),
    }
}

fn pool_resource(record: PoolRecord) -> Pool {
    Pool {
        name: record.name,
        display_name: record.display_name,
        create_time: rfc3339_ms(record.create_time_ms),
        export_enabled: record.export_enabled,
    }
}

impl<S: Store> Services<S> {
    /// RegisterDevice: checks the registration data and registers the device (the same data
    /// again returns the same device).
    pub async fn register_device(&self, registration_data: &str) -> Result<Device, ApiError> {
        let record = verify_registration(registration_data, now_ms())?;
        let stored = self.store.put_device(&record).await?;
        if stored.archive_public_key != record.archive_public_key {
            // Registering again must not look like it changed the archive key: archives would
            // still be encrypted to the first one.
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("{} is registered with another archive key", stored.name),
            ));
        }
        if stored.created_now(&record) {
            tracing::info!(device = %stored.name, "registered a device");
        }
        Ok(device_resource(stored))
    }

    /// GetDevice: the device itself or an API key.
    pub async fn get_device(
        &self,
        caller: &Principal,
        name: &DeviceName,
    ) -> Result<Device, ApiError> {
        ensure_acts_for(caller, name)?;
        let record = self
            .store
            .device(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        Ok(device_resource(record))
    }

    /// CreatePool: API keys only.
    pub async fn create_pool(
        &self,
        caller: &Principal,
        request: CreatePoolRequest,
    ) -> Result<Pool, ApiError> {
        if !matches!(caller, Principal::ApiKey(_)) {
            return Err(ApiError::denied("only an API key may create pools"));
        }
        let record = PoolRecord {
            name: PoolName::new(ResourceId::new(request.pool_id)?),
            display_name: request.display_name,
            create_time_ms: now_ms(),
            export_enabled: request.export_enabled,
        };
        if !self.store.create_pool(&record).await? {
            return Err(ApiError::new(
                ErrorCode::AlreadyExists,
                format!("{} exists already", record.name),
            ));
        }
        Ok(pool_resource(record))
    }

    /// GetPool: any authenticated caller.
    pub async fn get_pool(&self, name: &PoolName) -> Result<Pool, ApiError> {
        let record = self
            .store
            .pool(name)
            .await?
            .ok_or_else(|| ApiError::not_found(name))?;
        Ok(pool_resource(record))
    }
}

impl DeviceRecord {
    /// Whether this stored record is `new` (rather than an earlier registration of the same key).
    fn created_now(&self, new: &DeviceRecord) -> bool {
        self.create_time_ms == new.create_time_ms
    }
}
