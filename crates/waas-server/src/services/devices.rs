//! RegisterDevice, GetDevice, RevokeDevice, CreatePool, GetPool.

use waas_api::auth::reason;
use waas_api::resources::{CreatePoolRequest, Device, Pool, RevokeDeviceRequest};
use waas_api::{DeviceName, ErrorBody, ErrorCode, PasscodeLoginName, PoolName, ResourceId};

use super::passcode::login_invalid;
use super::{Services, ensure_acts_for, hex0x};
use crate::ApiError;
use crate::auth::{Principal, verify_registration};
use crate::store::{DeviceRecord, LoginUse, PoolRecord, Revocation, Store};
use crate::time::{now_ms, rfc3339_ms};

/// The refusal of a revocation the caller may not make: one answer whether the device exists or
/// not, and whether it shares a group with the caller or not, so a stranger learns nothing.
fn may_not_revoke() -> ApiError {
    ApiError::denied(
        "only the device itself, an API key, or a device of one of its groups with a fresh \
         passcode login of that group (the step-up) may revoke a device",
    )
}

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

    /// RevokeDevice (docs/protocol/revoke.md): the device itself, an API key, or another device
    /// of one of its groups with a step-up (a fresh passcode login of that group, used up). One
    /// durable transaction revokes the device, fails its open operations, deletes the server's
    /// halves of its pairings and revokes its open logins. Revoking it again answers the same.
    pub async fn revoke_device(
        &self,
        caller: &Principal,
        request: RevokeDeviceRequest,
    ) -> Result<Device, ApiError> {
        let device = &request.name;
        let step_up = match (caller, &request.login) {
            (Principal::ApiKey(_), None) => None,
            (Principal::Device(caller), None) if caller == device => None,
            (Principal::Device(caller), Some(login)) if caller != device => {
                Some(self.revoke_step_up(caller, device, login).await?)
            }
            (Principal::Device(_), None) => return Err(may_not_revoke()),
            (_, Some(_)) => {
                return Err(ApiError::invalid(
                    "a login is the step-up of another device's revocation only",
                ));
            }
        };
        // What its failed operations say, to API keys and to the exchange of a round in flight.
        let mut error = ErrorBody::new(ErrorCode::Aborted, "the device was revoked");
        error.reason = Some(reason::DEVICE_REVOKED.to_owned());
        let error = serde_json::to_string(&error).map_err(ApiError::internal)?;
        match self
            .store
            .revoke_device(device, step_up.as_ref(), &error)
            .await?
        {
            Revocation::Revoked(record) => {
                tracing::info!(%device, by = %caller.subject(), "revoked a device");
                Ok(device_resource(record))
            }
            // Only an API key gets here for a device that does not exist: a device's step-up
            // found the device in its group, and no device is ever deleted.
            Revocation::NotFound => Err(ApiError::not_found(device)),
            // The login was used, revoked or expired since it was checked.
            Revocation::StepUpRefused => Err(login_invalid()),
        }
    }

    /// Checks another device's step-up to revoke `device`: `login` must be a usable login the
    /// caller finished in a group `device` belongs to. The login's use is the revocation's.
    async fn revoke_step_up(
        &self,
        caller: &DeviceName,
        device: &DeviceName,
        login: &PasscodeLoginName,
    ) -> Result<LoginUse, ApiError> {
        let group = login.device_group_name();
        // The caller's own login first: its refusal tells nothing about `device`.
        let usable = self.usable_login(caller, &group, login, now_ms()).await?;
        if !self.store.is_member(&group, device).await? {
            return Err(may_not_revoke());
        }
        Ok(usable.usage)
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
