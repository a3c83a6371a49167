//! The SQL both stores run: one implementation of [`Store`](super::Store), written once and
//! expanded in each store's module by [`sql_store!`], with that database's types and its
//! clauses (row locks, the column that orders rows by creation). Placeholders are `$n`, which
//! both drivers read. Each store's module provides what differs beside the SQL:
//! `write()` and `write_durably()` (how a transaction starts and how durably it commits),
//! `begin_immediate`, and the locks SQLite's single writer makes needless, `lock_key`,
//! `lock_group` and `lock_group_devices` (see `postgres.rs`). Reads go through `self.pool`,
//! single-statement writes through `self.writer`.

/// Whether a read locks the rows it returns until the transaction ends.
#[derive(Clone, Copy)]
pub(super) enum Lock {
    /// A plain read.
    None,
    /// `FOR UPDATE` (PostgreSQL): the transaction will write them.
    Update,
}

/// How many rows a sweep (expired operations, old token ids) changes in one transaction: the
/// rows it holds, and the writers that would wait for one of them, are bounded by that.
pub(super) const SWEEP_BATCH: u16 = 500;

/// `impl Store` for `$store`, and the functions it uses. `$skip_locked` locks the rows a sweep
/// selects, passing over those another transaction holds (PostgreSQL's `FOR UPDATE SKIP
/// LOCKED`): a sweep then never waits for a row lock, so it can take no part in a deadlock with
/// the writers that lock in the store's order (device, group, then the rest).
macro_rules! sql_store {
    (
        store: $store:ty,
        database: $db:ty,
        connection: $conn:ty,
        order: $order:literal,
        for_update: $for_update:literal,
        for_share: $for_share:literal,
        for_share_of_device: $for_share_of_device:literal,
        for_no_key_update: $for_no_key_update:literal,
        skip_locked: $skip_locked:literal $(,)?
    ) => {
        async fn operation_by_request(
            connection: &mut $conn,
            operation: &NewOperation,
        ) -> Result<Option<OperationRecord>, StoreError> {
            let Some(request_id) = &operation.request_id else {
                return Ok(None);
            };
            // Two replicas given the same request at once: the second waits here for the first to
            // commit, then finds its operation (the unique key would otherwise fail its insert).
            lock_key(
                &mut *connection,
                &format!(
                    "request\n{}\n{}\n{request_id}",
                    operation.creator,
                    kind_text(operation.kind)
                ),
            )
            .await?;
            sqlx::query("SELECT * FROM operations WHERE creator = $1 AND kind = $2 AND request_id = $3")
                .bind(&operation.creator)
                .bind(kind_text(operation.kind))
                .bind(request_id)
                .fetch_optional(connection)
                .await?
                .as_ref()
                .map(operation_row)
                .transpose()
        }

        async fn insert_operation(
            connection: &mut $conn,
            operation: &NewOperation,
        ) -> Result<OperationRecord, StoreError> {
            let now = now_ms();
            let row = sqlx::query(
                "INSERT INTO operations (id, kind, device_group, device, epoch, state, metadata, params,
                     creator, request_id, request_hash, create_time_ms, update_time_ms)
                 VALUES ($1, $2, $3, $4, $5, 'PENDING', $6, $7, $8, $9, $10, $11, $12) RETURNING *",
            )
            .bind(operation.name.operation().as_str())
            .bind(kind_text(operation.kind))
            .bind(operation.device_group.to_string())
            .bind(operation.device.to_string())
            .bind(epoch_value(operation.epoch)?)
            .bind(&operation.metadata)
            .bind(&operation.params)
            .bind(&operation.creator)
            .bind(&operation.request_id)
            .bind(&operation.request_hash)
            .bind(now)
            .bind(now)
            .fetch_one(connection)
            .await?;
            operation_row(&row)
        }

        /// Fails, in the transaction on `connection`, at most [`SWEEP_BATCH`](super::sql::SWEEP_BATCH)
        /// open operations (`only` that one, if given) created before `created_before_ms` or idle
        /// since before `idle_before_ms`, with the pairings they leave behind; returns how many.
        ///
        /// The operations are taken in id order, skipping those another transaction holds: a step
        /// holds its own operation and may then want others on its pairing (a retirement), a
        /// revocation holds its device and wants the device's operations, so a sweep that waited
        /// for them, holding other operations meanwhile, could close a cycle (a deadlock, 40P01).
        /// It still waits for the pending pairings it deletes, which closes no cycle: the
        /// transactions that hold a pending pairing and then want an operation are the steps of
        /// the operation that made it (key generation, a recovery), held here, and a retirement,
        /// the one step that takes a pairing before other operations, retires confirmed ones.
        async fn expire_batch(
            connection: &mut $conn,
            only: Option<&str>,
            created_before_ms: i64,
            idle_before_ms: i64,
            error: &str,
        ) -> Result<u64, StoreError> {
            let expired: Vec<(String, String, String, i64, String)> = sqlx::query_as(concat!(
                "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = $1,
                     update_time_ms = $2
                 WHERE id IN (
                     SELECT id FROM operations
                     WHERE ((state = 'PENDING' AND create_time_ms < $3)
                            OR (state = 'RUNNING' AND update_time_ms < $4))
                         AND ($5 IS NULL OR id = $6)
                     ORDER BY id LIMIT $7",
                $skip_locked,
                ")
                 RETURNING id, device_group, device, epoch, kind"
            ))
            .bind(error)
            .bind(now_ms())
            .bind(created_before_ms)
            .bind(idle_before_ms)
            .bind(only)
            .bind(only)
            .bind(i64::from(super::sql::SWEEP_BATCH))
            .fetch_all(&mut *connection)
            .await?;
            for (id, group, device, epoch, kind) in &expired {
                if kind == kind_text(OperationKind::CreateDeviceGroup) {
                    // The device never confirmed: the server's half of that key is deleted.
                    sqlx::query(
                        "DELETE FROM pairings WHERE device_group = $1 AND device = $2 AND epoch = $3
                         AND state = 'PENDING'",
                    )
                    .bind(group)
                    .bind(device)
                    .bind(epoch)
                    .execute(&mut *connection)
                    .await?;
                } else if kind == kind_text(OperationKind::AddDevice) {
                    // Only the pending pairing this recovery made (round 7 names it): another
                    // AddDevice of the same device may have made the pending one, and still be live.
                    delete_recovered_pairing(&mut *connection, id).await?;
                }
            }
            Ok(u64::try_from(expired.len()).unwrap_or(u64::MAX))
        }

        impl Store for $store {
            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            async fn close(&self) {
                // Both pools (the same one on PostgreSQL): SQLite's writer closing last
                // checkpoints its write-ahead log into the database file.
                self.pool.close().await;
                self.writer.close().await;
            }

            async fn pool(&self, name: &PoolName) -> Result<Option<PoolRecord>, StoreError> {
                let row: Option<(String, i64, bool)> = sqlx::query_as(
                    "SELECT display_name, create_time_ms, export_enabled FROM pools WHERE name = $1",
                )
                .bind(name.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(
                    |(display_name, create_time_ms, export_enabled)| PoolRecord {
                        name: name.clone(),
                        display_name,
                        create_time_ms,
                        export_enabled,
                    },
                ))
            }

            async fn create_pool(&self, pool: &PoolRecord) -> Result<bool, StoreError> {
                let inserted = sqlx::query(
                    "INSERT INTO pools (name, display_name, create_time_ms, export_enabled)
                     VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING",
                )
                .bind(pool.name.to_string())
                .bind(&pool.display_name)
                .bind(pool.create_time_ms)
                .bind(pool.export_enabled)
                .execute(&self.writer)
                .await?;
                Ok(inserted.rows_affected() > 0)
            }

            async fn put_device(&self, device: &DeviceRecord) -> Result<DeviceRecord, StoreError> {
                let mut tx = self.write().await?;
                sqlx::query(
                    "INSERT INTO devices (name, auth_public_key, archive_public_key, state, create_time_ms)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
                )
                .bind(device.name.to_string())
                .bind(&device.auth_public_key)
                .bind(&device.archive_public_key)
                .bind(device_state_text(device.state))
                .bind(device.create_time_ms)
                .execute(&mut *tx)
                .await?;
                let row = sqlx::query("SELECT * FROM devices WHERE auth_public_key = $1")
                    .bind(&device.auth_public_key)
                    .fetch_one(&mut *tx)
                    .await?;
                tx.commit().await?;
                device_row(&row)
            }

            async fn device(&self, name: &DeviceName) -> Result<Option<DeviceRecord>, StoreError> {
                sqlx::query("SELECT * FROM devices WHERE name = $1")
                    .bind(name.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(device_row)
                    .transpose()
            }

            async fn revoke_device(
                &self,
                device: &DeviceName,
                step_up: Option<&LoginUse>,
                error: &str,
            ) -> Result<Revocation, StoreError> {
                self.write_durably(async |writer| revoke_device(writer, device, step_up, error).await)
                    .await
            }

            async fn put_api_key(&self, name: &str, public_key: &[u8]) -> Result<(), StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (name, public_key, create_time_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO UPDATE SET public_key = excluded.public_key",
                )
                .bind(name)
                .bind(public_key)
                .bind(now_ms())
                .execute(&self.writer)
                .await?;
                Ok(())
            }

            async fn remove_api_key(&self, name: &str) -> Result<(), StoreError> {
                sqlx::query("DELETE FROM api_keys WHERE name = $1")
                    .bind(name)
                    .execute(&self.writer)
                    .await?;
                Ok(())
            }

            async fn api_key(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
                let row: Option<(Vec<u8>,)> =
                    sqlx::query_as("SELECT public_key FROM api_keys WHERE name = $1")
                        .bind(name)
                        .fetch_optional(&self.pool)
                        .await?;
                Ok(row.map(|(key,)| key))
            }

            async fn use_token(
                &self,
                subject: &str,
                jti: &str,
                expires_ms: i64,
            ) -> Result<bool, StoreError> {
                // Old ids are forgotten by the periodic sweep, not here: an authentication waits
                // for no other request's deletions.
                let inserted = sqlx::query(
                    "INSERT INTO request_tokens (subject, jti, expires_ms) VALUES ($1, $2, $3)
                     ON CONFLICT DO NOTHING",
                )
                .bind(subject)
                .bind(jti)
                .bind(expires_ms)
                .execute(&self.writer)
                .await?;
                Ok(inserted.rows_affected() > 0)
            }

            async fn forget_token_ids(&self, expired_before_ms: i64) -> Result<u64, StoreError> {
                let mut forgotten = 0_u64;
                loop {
                    // One statement per batch; two replicas sweeping at once share the rows out.
                    let deleted = sqlx::query(concat!(
                        "DELETE FROM request_tokens WHERE (subject, jti) IN (
                             SELECT subject, jti FROM request_tokens WHERE expires_ms < $1
                             ORDER BY expires_ms LIMIT $2",
                        $skip_locked,
                        ")"
                    ))
                    .bind(expired_before_ms)
                    .bind(i64::from(super::sql::SWEEP_BATCH))
                    .execute(&self.writer)
                    .await?
                    .rows_affected();
                    forgotten = forgotten.saturating_add(deleted);
                    if deleted < u64::from(super::sql::SWEEP_BATCH) {
                        return Ok(forgotten);
                    }
                }
            }

            async fn create_wallet(
                &self,
                wallet: &NewWallet,
            ) -> Result<Created<OperationRecord>, StoreError> {
                let operation = &wallet.operation;
                let mut tx = self.write().await?;
                if let Some(existing) = operation_by_request(&mut tx, operation).await? {
                    return Ok(Created::Existing(existing));
                }
                let now = now_ms();
                sqlx::query(
                    "INSERT INTO device_groups (name, pool, state, create_time_ms) VALUES ($1, $2, 'CREATING', $3)",
                )
                .bind(operation.device_group.to_string())
                .bind(operation.device_group.pool_name().to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                sqlx::query("INSERT INTO device_group_devices (device_group, device) VALUES ($1, $2)")
                    .bind(operation.device_group.to_string())
                    .bind(operation.device.to_string())
                    .execute(&mut *tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO mpc_wallets (name, pool, device_group, create_time_ms) VALUES ($1, $2, $3, $4)",
                )
                .bind(wallet.wallet.to_string())
                .bind(wallet.wallet.pool_name().to_string())
                .bind(operation.device_group.to_string())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let record = insert_operation(&mut tx, operation).await?;
                tx.commit().await?;
                Ok(Created::New(record))
            }

            async fn wallet(&self, name: &MpcWalletName) -> Result<Option<WalletRecord>, StoreError> {
                let row: Option<(String, i64)> =
                    sqlx::query_as("SELECT device_group, create_time_ms FROM mpc_wallets WHERE name = $1")
                        .bind(name.to_string())
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(|(group, create_time_ms)| {
                    Ok(WalletRecord {
                        name: name.clone(),
                        device_group: parse(&group)?,
                        create_time_ms,
                    })
                })
                .transpose()
            }

            async fn device_group(
                &self,
                name: &DeviceGroupName,
            ) -> Result<Option<GroupRecord>, StoreError> {
                let mut connection = self.pool.acquire().await?;
                let Some(row) = sqlx::query("SELECT * FROM device_groups WHERE name = $1")
                    .bind(name.to_string())
                    .fetch_optional(&mut *connection)
                    .await?
                else {
                    return Ok(None);
                };
                let devices: Vec<(String,)> = sqlx::query_as(
                    "SELECT device FROM device_group_devices WHERE device_group = $1 ORDER BY device",
                )
                .bind(name.to_string())
                .fetch_all(&mut *connection)
                .await?;
                let state = group_state(row.try_get("state")?)?;
                Ok(Some(GroupRecord {
                    name: name.clone(),
                    state,
                    root_public_key: row.try_get("root_public_key")?,
                    chain_code_sealed: row.try_get("chain_code_sealed")?,
                    devices: devices
                        .iter()
                        .map(|(device,)| parse(device))
                        .collect::<Result<_, _>>()?,
                }))
            }

            async fn is_member(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
            ) -> Result<bool, StoreError> {
                let row: Option<(i64,)> = sqlx::query_as(
                    "SELECT CAST(1 AS BIGINT) FROM device_group_devices WHERE device_group = $1 AND device = $2",
                )
                .bind(group.to_string())
                .bind(device.to_string())
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.is_some())
            }

            async fn pairing(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
                epoch: u64,
            ) -> Result<Option<PairingRecord>, StoreError> {
                let row: Option<(String, Vec<u8>, Vec<u8>)> = sqlx::query_as(
                    "SELECT state, pairing_id, pairing_sealed FROM pairings
                     WHERE device_group = $1 AND device = $2 AND epoch = $3",
                )
                .bind(group.to_string())
                .bind(device.to_string())
                .bind(epoch_value(epoch)?)
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(state, pairing_id, pairing_sealed)| {
                    Ok(PairingRecord {
                        state: pairing_state(&state)?,
                        pairing_id,
                        pairing_sealed,
                    })
                })
                .transpose()
            }

            async fn device_states(
                &self,
                group: &DeviceGroupName,
            ) -> Result<Vec<(DeviceName, DeviceState)>, StoreError> {
                let rows: Vec<(String, String)> = sqlx::query_as(
                    "SELECT m.device, d.state FROM device_group_devices m
                     JOIN devices d ON d.name = m.device WHERE m.device_group = $1 ORDER BY m.device",
                )
                .bind(group.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|(device, state)| Ok((parse(device)?, device_state(state)?)))
                    .collect()
            }

            async fn device_group_events(
                &self,
                group: &DeviceGroupName,
            ) -> Result<Vec<GroupEventRecord>, StoreError> {
                let rows: Vec<(String, String, Option<String>, i64)> = sqlx::query_as(concat!(
                    "SELECT type, device, operation, time_ms FROM device_group_events
                     WHERE device_group = $1 ORDER BY ",
                    $order
                ))
                .bind(group.to_string())
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|(kind, device, operation, time_ms)| {
                        Ok(GroupEventRecord {
                            kind: event_kind(kind)?,
                            device: parse(device)?,
                            operation: operation.as_deref().map(parse).transpose()?,
                            time_ms: *time_ms,
                        })
                    })
                    .collect()
            }

            async fn confirmed_epoch(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
            ) -> Result<Option<u64>, StoreError> {
                let row: Option<(Option<i64>,)> = sqlx::query_as(
                    "SELECT MAX(epoch) FROM pairings
                     WHERE device_group = $1 AND device = $2 AND state = 'CONFIRMED'",
                )
                .bind(group.to_string())
                .bind(device.to_string())
                .fetch_optional(&self.pool)
                .await?;
                row.and_then(|(epoch,)| epoch)
                    .map(|epoch| u64::try_from(epoch).map_err(|_| StoreError::Corrupt("epoch".into())))
                    .transpose()
            }

            async fn put_key(
                &self,
                group: &DeviceGroupName,
                key: &KeyRecord,
            ) -> Result<KeyRecord, StoreError> {
                let mut tx = self.write().await?;
                let record = insert_key(&mut tx, group, key).await?;
                tx.commit().await?;
                Ok(record)
            }

            async fn key(&self, name: &MpcKeyName) -> Result<Option<KeyRecord>, StoreError> {
                sqlx::query("SELECT * FROM mpc_keys WHERE name = $1")
                    .bind(name.to_string())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(key_row)
                    .transpose()
            }

            async fn add_next_address<E: From<StoreError> + Send>(
                &self,
                group: &DeviceGroupName,
                wallet: &MpcWalletName,
                make: impl FnOnce(u32) -> Result<AddressRecord, E> + Send,
            ) -> Result<AddressRecord, E> {
                let mut tx = self.write().await?;
                let (index,): (i64,) = sqlx::query_as(
                    "UPDATE mpc_wallets SET next_index = next_index + 1 WHERE name = $1
                     RETURNING next_index - 1",
                )
                .bind(wallet.to_string())
                .fetch_one(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                let index =
                    u32::try_from(index).map_err(|_| StoreError::Corrupt("address index".into()))?;
                let address = make(index)?;
                let key = insert_key(&mut tx, group, &address.key).await?;
                sqlx::query(
                    "INSERT INTO addresses (mpc_wallet, address, network, mpc_key, create_time_ms)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(address.mpc_wallet.to_string())
                .bind(&address.address)
                .bind(&address.network)
                .bind(key.name.to_string())
                .bind(now_ms())
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from)?;
                tx.commit().await.map_err(StoreError::from)?;
                Ok(AddressRecord { key, ..address })
            }

            async fn addresses(&self, wallet: &MpcWalletName) -> Result<Vec<AddressRecord>, StoreError> {
                sqlx::query(concat!(
                    "SELECT a.address, a.network, a.mpc_wallet, k.* FROM addresses a
                     JOIN mpc_keys k ON k.name = a.mpc_key WHERE a.mpc_wallet = $1 ORDER BY a.",
                    $order
                ))
                .bind(wallet.to_string())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(address_row)
                .collect()
            }

            async fn address(
                &self,
                wallet: &MpcWalletName,
                address: &str,
            ) -> Result<Option<AddressRecord>, StoreError> {
                sqlx::query(
                    "SELECT a.address, a.network, a.mpc_wallet, k.* FROM addresses a
                     JOIN mpc_keys k ON k.name = a.mpc_key WHERE a.mpc_wallet = $1 AND lower(a.address) = lower($2)",
                )
                .bind(wallet.to_string())
                .bind(address)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(address_row)
                .transpose()
            }

            async fn create_operation(
                &self,
                operation: &NewOperation,
            ) -> Result<Created<OperationRecord>, StoreError> {
                let mut tx = self.write().await?;
                if let Some(existing) = operation_by_request(&mut tx, operation).await? {
                    return Ok(Created::Existing(existing));
                }
                let record = insert_operation(&mut tx, operation).await?;
                tx.commit().await?;
                Ok(Created::New(record))
            }

            async fn operation(&self, name: &OperationName) -> Result<Option<OperationRecord>, StoreError> {
                sqlx::query("SELECT * FROM operations WHERE id = $1")
                    .bind(name.operation().as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(operation_row)
                    .transpose()
            }

            async fn open_operations(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
            ) -> Result<Vec<OperationRecord>, StoreError> {
                sqlx::query(
                    "SELECT * FROM operations WHERE device_group = $1 AND device = $2
                     AND state IN ('PENDING', 'RUNNING') ORDER BY create_time_ms, id",
                )
                .bind(group.to_string())
                .bind(device.to_string())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(operation_row)
                .collect()
            }

            async fn expire_operations(
                &self,
                created_before_ms: i64,
                idle_before_ms: i64,
                error: &str,
            ) -> Result<u64, StoreError> {
                let mut expired = 0_u64;
                loop {
                    let mut tx = self.write().await?;
                    let batch =
                        expire_batch(&mut tx, None, created_before_ms, idle_before_ms, error).await?;
                    tx.commit().await?;
                    expired = expired.saturating_add(batch);
                    // A batch expires rows that no longer match: the loop ends once fewer are left.
                    if batch < u64::from(super::sql::SWEEP_BATCH) {
                        return Ok(expired);
                    }
                }
            }

            async fn expire_operation(
                &self,
                name: &OperationName,
                created_before_ms: i64,
                idle_before_ms: i64,
                error: &str,
            ) -> Result<bool, StoreError> {
                let mut tx = self.write().await?;
                let expired = expire_batch(
                    &mut tx,
                    Some(name.operation().as_str()),
                    created_before_ms,
                    idle_before_ms,
                    error,
                )
                .await?;
                tx.commit().await?;
                Ok(expired == 1)
            }

            async fn commit_step(
                &self,
                name: &OperationName,
                from_round: u8,
                step: &StepUpdate,
            ) -> Result<Committed, StoreError> {
                self.write_durably(async |writer| commit_step(writer, name, from_round, step).await)
                    .await
            }

            async fn retire_pairing(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
                epoch: u64,
                error: &str,
            ) -> Result<(), StoreError> {
                self.write_durably(async |writer| {
                    retire_pairing(writer, group, device, epoch, error).await
                })
                .await
            }

            async fn live_backup(
                &self,
                group: &DeviceGroupName,
                backup: &MpcOperationName,
                replaced_since_ms: i64,
            ) -> Result<Option<BackupRecord>, StoreError> {
                sqlx::query(
                    "SELECT * FROM backups WHERE device_group = $1 AND backup = $2
                         AND (replaced_time_ms IS NULL OR replaced_time_ms >= $3)",
                )
                .bind(group.to_string())
                .bind(backup.to_string())
                .bind(replaced_since_ms)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(backup_row)
                .transpose()
            }

            async fn forget_replaced_backups(&self, replaced_before_ms: i64) -> Result<u64, StoreError> {
                let deleted = sqlx::query(
                    "DELETE FROM backups
                     WHERE replaced_time_ms IS NOT NULL AND replaced_time_ms < $1",
                )
                .bind(replaced_before_ms)
                .execute(&self.writer)
                .await?;
                Ok(deleted.rows_affected())
            }

            async fn server_secret(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>, StoreError> {
                let mut tx = self.write().await?;
                sqlx::query(
                    "INSERT INTO server_secrets (name, secret_sealed, create_time_ms) VALUES ($1, $2, $3)
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(sealed)
                .bind(now_ms())
                .execute(&mut *tx)
                .await?;
                let (stored,): (Vec<u8>,) =
                    sqlx::query_as("SELECT secret_sealed FROM server_secrets WHERE name = $1")
                        .bind(name)
                        .fetch_one(&mut *tx)
                        .await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn keys(&self, group: &DeviceGroupName) -> Result<Vec<KeyRecord>, StoreError> {
                sqlx::query(concat!("SELECT * FROM mpc_keys WHERE device_group = $1 ORDER BY ", $order))
                    .bind(group.to_string())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(key_row)
                    .collect()
            }

            async fn passcode_record(
                &self,
                group: &DeviceGroupName,
            ) -> Result<Option<PasscodeRecord>, StoreError> {
                let row: Option<(i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT version, record_sealed FROM passcode_records WHERE device_group = $1",
                )
                .bind(group.to_string())
                .fetch_optional(&self.pool)
                .await?;
                row.map(|(version, record_sealed)| {
                    Ok(PasscodeRecord {
                        version: stored_u64(version, "record version")?,
                        record_sealed,
                    })
                })
                .transpose()
            }

            async fn create_passcode_record(
                &self,
                group: &DeviceGroupName,
                record_sealed: &[u8],
            ) -> Result<bool, StoreError> {
                self.write_durably(async |writer| {
                    let inserted = sqlx::query(
                        "INSERT INTO passcode_records (device_group, version, record_sealed,
                             update_time_ms) VALUES ($1, 1, $2, $3) ON CONFLICT (device_group) DO NOTHING",
                    )
                    .bind(group.to_string())
                    .bind(record_sealed)
                    .bind(now_ms())
                    .execute(writer)
                    .await?;
                    Ok(inserted.rows_affected() == 1)
                })
                .await
            }

            async fn reset_passcode_record(
                &self,
                group: &DeviceGroupName,
                from_version: u64,
                record_sealed: &[u8],
                login: &LoginUse,
                recovery_error: &str,
            ) -> Result<Option<u64>, StoreError> {
                let version = next_version(from_version)?;
                self.write_durably(async |writer| {
                    let mut tx = begin_immediate(writer).await?;
                    // In the lock order: the devices it reads the state of or changes the logins and
                    // operations of (a revocation of one of them waits, or is waited for), then the
                    // group (exchange steps with an effect on it wait).
                    lock_group_devices(&mut tx, &group.to_string()).await?;
                    lock_group(&mut tx, &group.to_string()).await?;
                    let updated = sqlx::query(
                        "UPDATE passcode_records SET version = $1, record_sealed = $2, update_time_ms = $3
                         WHERE device_group = $4 AND version = $5",
                    )
                    .bind(stored_i64(version)?)
                    .bind(record_sealed)
                    .bind(now_ms())
                    .bind(group.to_string())
                    .bind(stored_i64(from_version)?)
                    .execute(&mut *tx)
                    .await?;
                    // Dropping the transaction rolls back whatever was written.
                    if updated.rows_affected() != 1 || !use_login(&mut tx, login, Some(version)).await? {
                        return Ok(None);
                    }
                    // Logins started or finished with the old record authorize nothing from now on.
                    sqlx::query(
                        "UPDATE passcode_logins SET state = 'REVOKED', state_sealed = NULL,
                             session_sealed = NULL
                         WHERE device_group = $1 AND state IN ('STARTED', 'FINISHED')",
                    )
                    .bind(group.to_string())
                    .execute(&mut *tx)
                    .await?;
                    // The current backups made by a revoked device of the group (a thief's strings,
                    // which the revocation kept current) are retired by the reset: replaced by it (its
                    // login's name), kept for the retention like any replaced backup, then swept. A
                    // revocation never brings them back: no backup has that id.
                    sqlx::query(
                        "UPDATE backups SET replaced_time_ms = $1, replaced_by = $2
                         WHERE device_group = $3 AND replaced_time_ms IS NULL
                             AND device IN (SELECT name FROM devices WHERE state = 'REVOKED')",
                    )
                    .bind(now_ms())
                    .bind(login.name.to_string())
                    .bind(group.to_string())
                    .execute(&mut *tx)
                    .await?;
                    // Recoveries in flight logged in with the old record: they end here, with the
                    // pending pairings they made (a later round of theirs finds them failed).
                    let failed: Vec<(String,)> = sqlx::query_as(
                        "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = $1,
                             update_time_ms = $2
                         WHERE device_group = $3 AND kind = $4 AND state IN ('PENDING', 'RUNNING')
                         RETURNING id",
                    )
                    .bind(recovery_error)
                    .bind(now_ms())
                    .bind(group.to_string())
                    .bind(kind_text(OperationKind::AddDevice))
                    .fetch_all(&mut *tx)
                    .await?;
                    for (id,) in &failed {
                        delete_recovered_pairing(&mut tx, id).await?;
                    }
                    tx.commit().await?;
                    Ok(Some(version))
                })
                .await
            }

            async fn start_passcode_reset(
                &self,
                login: &LoginUse,
                from_version: u64,
            ) -> Result<bool, StoreError> {
                let version = next_version(from_version)?;
                let group = login.name.device_group_name().to_string();
                self.write_durably(async |writer| {
                    let mut tx = begin_immediate(writer).await?;
                    // The record held at `from_version` until the mark commits (a reset waits).
                    if !record_at(&mut tx, &group, from_version).await? {
                        return Ok(false);
                    }
                    let marked = sqlx::query(
                        "UPDATE passcode_logins SET reset_version = $1
                         WHERE id = $2 AND device_group = $3 AND device = $4 AND state = 'FINISHED'
                             AND finish_time_ms >= $5 AND record_version = $6 AND reset_version IS NULL",
                    )
                    .bind(stored_i64(version)?)
                    .bind(login.name.login().as_str())
                    .bind(&group)
                    .bind(login.device.to_string())
                    .bind(login.finished_after_ms)
                    .bind(stored_i64(from_version)?)
                    .execute(&mut *tx)
                    .await?;
                    if marked.rows_affected() != 1 {
                        return Ok(false);
                    }
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }

            async fn passcode_attempts(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
            ) -> Result<Attempts, StoreError> {
                Ok(
                    attempts(&mut *self.pool.acquire().await?, group, device, Lock::None)
                        .await?
                        .unwrap_or_default(),
                )
            }

            async fn count_passcode_attempt<E: From<StoreError> + Send>(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
                now_ms: i64,
                max_failures: u32,
                login: Option<&NewLogin>,
                check: impl FnOnce(&Attempts, Option<u64>) -> Result<(), E> + Send,
            ) -> Result<(), E> {
                self.write_durably(async |writer| {
                    let mut tx = begin_immediate(writer).await?;
                    // The record first (a reset waits for this attempt, or this attempt for the reset),
                    // then the count: held from the read to the write, and the key's lock while the
                    // device has no row yet, so two attempts at once count two.
                    let version: Option<(i64,)> = sqlx::query_as(concat!(
                        "SELECT version FROM passcode_records WHERE device_group = $1",
                        $for_share
                    ))
                    .bind(group.to_string())
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                    lock_key(&mut tx, &format!("passcode_attempts\n{group}\n{device}")).await?;
                    let before = attempts(&mut tx, group, device, Lock::Update)
                        .await?
                        .unwrap_or_default();
                    let version = version
                        .map(|(version,)| stored_u64(version, "record version"))
                        .transpose()?;
                    check(&before, version)?;
                    let failures = before.failures.saturating_add(1);
                    sqlx::query(
                        "INSERT INTO passcode_attempts (device_group, device, failures, last_attempt_ms,
                             locked) VALUES ($1, $2, $3, $4, $5)
                         ON CONFLICT (device_group, device) DO UPDATE SET failures = excluded.failures,
                             last_attempt_ms = excluded.last_attempt_ms, locked = excluded.locked",
                    )
                    .bind(group.to_string())
                    .bind(device.to_string())
                    .bind(i64::from(failures))
                    .bind(now_ms)
                    .bind(before.locked || failures >= max_failures)
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                    if let Some(login) = login {
                        sqlx::query(
                            "INSERT INTO passcode_logins (id, device_group, device, record_version, state,
                                 state_sealed, create_time_ms) VALUES ($1, $2, $3, $4, 'STARTED', $5, $6)",
                        )
                        .bind(login.name.login().as_str())
                        .bind(group.to_string())
                        .bind(login.device.to_string())
                        .bind(stored_i64(login.record_version)?)
                        .bind(&login.state_sealed)
                        .bind(now_ms)
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                    }
                    tx.commit().await.map_err(StoreError::from)?;
                    Ok(())
                })
                .await
            }

            async fn passcode_login(
                &self,
                name: &PasscodeLoginName,
            ) -> Result<Option<LoginRecord>, StoreError> {
                let Some(row) =
                    sqlx::query("SELECT * FROM passcode_logins WHERE id = $1 AND device_group = $2")
                        .bind(name.login().as_str())
                        .bind(name.device_group_name().to_string())
                        .fetch_optional(&self.pool)
                        .await?
                else {
                    return Ok(None);
                };
                login_row(name, &row).map(Some)
            }

            async fn finish_passcode_login(
                &self,
                name: &PasscodeLoginName,
                outcome: &LoginOutcome,
                started_after_ms: i64,
                max_failures: u32,
            ) -> Result<bool, StoreError> {
                self.write_durably(async |writer| {
                    let (state, session_sealed) = match outcome {
                        LoginOutcome::Finished { session_sealed } => ("FINISHED", Some(session_sealed)),
                        LoginOutcome::Failed => ("FAILED", None),
                    };
                    let mut tx = begin_immediate(writer).await?;
                    let row: Option<(String,)> = sqlx::query_as(
                        "UPDATE passcode_logins SET state = $1, state_sealed = NULL, session_sealed = $2,
                             finish_time_ms = $3
                         WHERE id = $4 AND device_group = $5 AND state = 'STARTED' AND create_time_ms >= $6
                         RETURNING device",
                    )
                    .bind(state)
                    .bind(session_sealed)
                    .bind(now_ms())
                    .bind(name.login().as_str())
                    .bind(name.device_group_name().to_string())
                    .bind(started_after_ms)
                    .fetch_optional(&mut *tx)
                    .await?;
                    let Some((device,)) = row else {
                        return Ok(false);
                    };
                    if matches!(outcome, LoginOutcome::Finished { .. }) {
                        // Below the lock only: once locked (by attempts made after this login started,
                        // or by its own start), only the operator's unlock clears the count.
                        sqlx::query(
                            "UPDATE passcode_attempts SET failures = 0
                             WHERE device_group = $1 AND device = $2 AND failures < $3 AND NOT locked",
                        )
                        .bind(name.device_group_name().to_string())
                        .bind(device)
                        .bind(i64::from(max_failures))
                        .execute(&mut *tx)
                        .await?;
                    }
                    tx.commit().await?;
                    Ok(true)
                })
                .await
            }

            async fn unlock_passcode(
                &self,
                group: &DeviceGroupName,
                device: &DeviceName,
            ) -> Result<Option<Attempts>, StoreError> {
                let mut tx = self.write().await?;
                let before = attempts(&mut tx, group, device, Lock::Update).await?;
                sqlx::query(
                    "UPDATE passcode_attempts SET failures = 0, locked = FALSE
                     WHERE device_group = $1 AND device = $2",
                )
                .bind(group.to_string())
                .bind(device.to_string())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(before)
            }

            async fn recovery_attempts(&self, backup: &MpcOperationName) -> Result<Attempts, StoreError> {
                Ok(
                    recovery_attempts(&mut *self.pool.acquire().await?, backup, Lock::None)
                        .await?
                        .unwrap_or_default(),
                )
            }

            async fn unlock_recovery(
                &self,
                group: &DeviceGroupName,
                backup: Option<&MpcOperationName>,
            ) -> Result<Vec<(MpcOperationName, Attempts)>, StoreError> {
                let mut tx = self.write().await?;
                let backup = backup.map(ToString::to_string);
                let before: Vec<(String, i64, i64, bool)> = sqlx::query_as(concat!(
                    "SELECT backup, failures, last_attempt_ms, locked FROM recovery_attempts
                     WHERE device_group = $1 AND ($2 IS NULL OR backup = $3) ORDER BY last_attempt_ms, backup",
                    $for_update
                ))
                .bind(group.to_string())
                .bind(&backup)
                .bind(&backup)
                .fetch_all(&mut *tx)
                .await?;
                sqlx::query(
                    "UPDATE recovery_attempts SET failures = 0, locked = FALSE
                     WHERE device_group = $1 AND ($2 IS NULL OR backup = $3)",
                )
                .bind(group.to_string())
                .bind(&backup)
                .bind(&backup)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                before
                    .into_iter()
                    .map(|(backup, failures, last_attempt_ms, locked)| {
                        Ok((
                            parse(&backup)?,
                            attempts_row((failures, last_attempt_ms, locked))?,
                        ))
                    })
                    .collect()
            }

            async fn forget_passcode_logins(&self, before_ms: i64) -> Result<u64, StoreError> {
                let deleted = sqlx::query("DELETE FROM passcode_logins WHERE create_time_ms < $1")
                    .bind(before_ms)
                    .execute(&self.writer)
                    .await?;
                Ok(deleted.rows_affected())
            }
        }

        /// A device's failed attempts in a group, if any were recorded.
        async fn attempts(
            connection: &mut $conn,
            group: &DeviceGroupName,
            device: &DeviceName,
            lock: Lock,
        ) -> Result<Option<Attempts>, StoreError> {
            let row: Option<(i64, i64, bool)> = sqlx::query_as(match lock {
                Lock::None => {
                    "SELECT failures, last_attempt_ms, locked FROM passcode_attempts
                     WHERE device_group = $1 AND device = $2"
                }
                Lock::Update => concat!(
                    "SELECT failures, last_attempt_ms, locked FROM passcode_attempts
                     WHERE device_group = $1 AND device = $2",
                    $for_update
                ),
            })
            .bind(group.to_string())
            .bind(device.to_string())
            .fetch_optional(connection)
            .await?;
            row.map(attempts_row).transpose()
        }

        /// A backup's failed recovery attempts, if any were recorded.
        async fn recovery_attempts(
            connection: &mut $conn,
            backup: &MpcOperationName,
            lock: Lock,
        ) -> Result<Option<Attempts>, StoreError> {
            let row: Option<(i64, i64, bool)> = sqlx::query_as(match lock {
                Lock::None => {
                    "SELECT failures, last_attempt_ms, locked FROM recovery_attempts WHERE backup = $1"
                }
                Lock::Update => concat!(
                    "SELECT failures, last_attempt_ms, locked FROM recovery_attempts WHERE backup = $1",
                    $for_update
                ),
            })
            .bind(backup.to_string())
            .fetch_optional(connection)
            .await?;
            row.map(attempts_row).transpose()
        }

        /// Whether the group's passcode record is at `version`; it stays there until the transaction
        /// ends (a reset waits for it: `FOR SHARE`).
        async fn record_at(
            connection: &mut $conn,
            group: &str,
            version: u64,
        ) -> Result<bool, StoreError> {
            let row: Option<(i64,)> = sqlx::query_as(concat!(
                "SELECT version FROM passcode_records WHERE device_group = $1 AND version = $2",
                $for_share
            ))
            .bind(group)
            .bind(stored_i64(version)?)
            .fetch_optional(connection)
            .await?;
            Ok(row.is_some())
        }

        /// [`Store::commit_step`] in one transaction.
        async fn commit_step(
            connection: &mut $conn,
            name: &OperationName,
            from_round: u8,
            step: &StepUpdate,
        ) -> Result<Committed, StoreError> {
            let mut tx = begin_immediate(connection).await?;
            // The lock order (see the module): first the operation's device, shared until the commit,
            // so a revocation either committed before (the device reads revoked below) or waits for
            // this step (and then fails what it wrote); then, for a step with an effect, its group,
            // so that steps touching a group's rows (backups, pairings, counts, the passcode record)
            // and passcode resets run one at a time per group.
            let held: Option<(String,)> = sqlx::query_as(concat!(
                "SELECT o.device_group FROM operations o JOIN devices d ON d.name = o.device
                 WHERE o.id = $1",
                $for_share_of_device
            ))
            .bind(name.operation().as_str())
            .fetch_optional(&mut *tx)
            .await?;
            if let Some((group,)) = &held
                && !matches!(step.effect, StepEffect::None)
            {
                lock_group(&mut tx, group).await?;
            }
            let row: Option<(String, String, i64, String)> = sqlx::query_as(
                "UPDATE operations SET round = $1, input_hash = $2, reply = $3, session_sealed = $4,
                         state = $5, response = $6, error = $7, update_time_ms = $8
                     WHERE id = $9 AND round = $10 AND state IN ('PENDING', 'RUNNING')
                         AND EXISTS (SELECT 1 FROM devices
                                     WHERE devices.name = operations.device AND state = 'ACTIVE')
                     RETURNING device_group, device, epoch, kind",
            )
            .bind(i64::from(step.round))
            .bind(&step.input_hash)
            .bind(&step.reply)
            .bind(&step.session_sealed)
            .bind(state_text(step.state))
            .bind(&step.response)
            .bind(&step.error)
            .bind(now_ms())
            .bind(name.operation().as_str())
            .bind(i64::from(from_round))
            .fetch_optional(&mut *tx)
            .await?;
            let Some((group, device, epoch, kind)) = row else {
                // Which condition failed: a revocation (which also failed the operation) is told as such.
                let revoked: Option<(i64,)> = sqlx::query_as(
                    "SELECT CAST(1 AS BIGINT) FROM operations JOIN devices ON devices.name = operations.device
                     WHERE operations.id = $1 AND devices.state <> 'ACTIVE'",
                )
                .bind(name.operation().as_str())
                .fetch_optional(&mut *tx)
                .await?;
                return Ok(match revoked {
                    Some(_) => Committed::DeviceRevoked,
                    None => Committed::RoundTaken,
                });
            };
            // A recovery that ends failed takes the pending pairing it made with it.
            if step.state == OperationState::Failed && kind == kind_text(OperationKind::AddDevice) {
                delete_recovered_pairing(&mut tx, name.operation().as_str()).await?;
            }
            match &step.effect {
                StepEffect::None => {}
                StepEffect::KeygenFinished {
                    pairing_id,
                    pairing_sealed,
                    root_public_key,
                    chain_code_sealed,
                } => {
                    sqlx::query(
                        "INSERT INTO pairings (device_group, device, epoch, state, pairing_id,
                                 pairing_sealed, create_time_ms) VALUES ($1, $2, $3, 'PENDING', $4, $5, $6)",
                    )
                    .bind(&group)
                    .bind(&device)
                    .bind(epoch)
                    .bind(pairing_id)
                    .bind(pairing_sealed)
                    .bind(now_ms())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                            "UPDATE device_groups SET root_public_key = $1, chain_code_sealed = $2 WHERE name = $3",
                        )
                        .bind(root_public_key)
                        .bind(chain_code_sealed)
                        .bind(&group)
                        .execute(&mut *tx)
                        .await?;
                }
                StepEffect::KeygenConfirmed { archive } => {
                    sqlx::query(
                        "UPDATE pairings SET state = 'CONFIRMED'
                             WHERE device_group = $1 AND device = $2 AND epoch = $3 AND state = 'PENDING'",
                    )
                    .bind(&group)
                    .bind(&device)
                    .bind(epoch)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query("UPDATE device_groups SET state = 'ACTIVE' WHERE name = $1")
                        .bind(&group)
                        .execute(&mut *tx)
                        .await?;
                    if let Some(archive) = archive {
                        insert_operation(&mut tx, archive).await?;
                    }
                }
                StepEffect::UseLogin(login) => {
                    // Dropping the transaction rolls the step back: nothing of it is written.
                    if !use_login(&mut tx, login, None).await? {
                        return Ok(Committed::ConditionFailed);
                    }
                }
                StepEffect::BackupVerified(backup) => {
                    // The group's current backups are marked replaced by this one, not deleted: the
                    // user may not have saved the new string yet, and a thief's backup must not take
                    // the owner's with it (RevokeDevice brings the owner's back). The sweep deletes
                    // them once the retention ran out. Only here, in round 5's commit: a backup that
                    // does not get here replaces nothing.
                    let id = backup.backup.to_string();
                    let now = now_ms();
                    sqlx::query(
                        "UPDATE backups SET replaced_time_ms = $1, replaced_by = $2
                             WHERE device_group = $3 AND replaced_time_ms IS NULL",
                    )
                    .bind(now)
                    .bind(&id)
                    .bind(&group)
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "INSERT INTO backups (device_group, backup, device, epoch, pairing_id,
                                 decryption_share_sealed, device_key_share, server_key_share,
                                 device_ciphertext, server_ciphertext, create_time_ms)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    )
                    .bind(&group)
                    .bind(&id)
                    .bind(&device)
                    .bind(epoch)
                    .bind(&backup.pairing_id)
                    .bind(&backup.decryption_share_sealed)
                    .bind(&backup.device_key_share)
                    .bind(&backup.server_key_share)
                    .bind(&backup.device_ciphertext)
                    .bind(&backup.server_ciphertext)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                StepEffect::RetirePairing => {
                    retire_pairing_in(&mut tx, &group, &device, epoch, step.error.as_deref())
                        .await?;
                }
                StepEffect::RecoveryAttempt {
                    backup,
                    seen,
                    record_version,
                    now_ms: at_ms,
                    max_failures,
                } => {
                    // The lock and backoff were checked on `seen`: another attempt counted since, or a
                    // reset of the passcode, voids that check, and nothing of the step is written.
                    lock_key(&mut tx, &format!("recovery_attempts\n{backup}")).await?;
                    let before = recovery_attempts(&mut tx, backup, Lock::Update)
                        .await?
                        .unwrap_or_default();
                    if before != *seen || !record_at(&mut tx, &group, *record_version).await? {
                        return Ok(Committed::ConditionFailed);
                    }
                    let failures = before.failures.saturating_add(1);
                    // Counted against the backup's row, of the operation's group; a backup swept since
                    // it was read counts nothing (and the round is refused).
                    let counted = sqlx::query(
                        "INSERT INTO recovery_attempts (backup, device_group, failures, last_attempt_ms,
                                 locked)
                             SELECT backup, device_group, $1, $2, $3 FROM backups
                             WHERE backup = $4 AND device_group = $5
                         ON CONFLICT (backup) DO UPDATE SET failures = excluded.failures,
                             last_attempt_ms = excluded.last_attempt_ms, locked = excluded.locked",
                    )
                    .bind(i64::from(failures))
                    .bind(*at_ms)
                    .bind(before.locked || failures >= *max_failures)
                    .bind(backup.to_string())
                    .bind(&group)
                    .execute(&mut *tx)
                    .await?;
                    if counted.rows_affected() != 1 {
                        return Ok(Committed::ConditionFailed);
                    }
                }
                StepEffect::RecoveryLoggedIn {
                    backup,
                    record_version,
                    max_failures,
                } => {
                    if !record_at(&mut tx, &group, *record_version).await? {
                        return Ok(Committed::ConditionFailed);
                    }
                    // Below the lock only: once locked, only the operator's unlock clears the count.
                    sqlx::query(
                        "UPDATE recovery_attempts SET failures = 0
                         WHERE backup = $1 AND failures < $2 AND NOT locked",
                    )
                    .bind(backup.to_string())
                    .bind(i64::from(*max_failures))
                    .execute(&mut *tx)
                    .await?;
                }
                StepEffect::RecoveredPairing {
                    record_version,
                    epoch,
                    pairing_id,
                    pairing_sealed,
                } => {
                    if !record_at(&mut tx, &group, *record_version).await? {
                        return Ok(Committed::ConditionFailed);
                    }
                    let inserted = sqlx::query(
                        "INSERT INTO pairings (device_group, device, epoch, state, pairing_id,
                                 pairing_sealed, create_time_ms, operation)
                             VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7)
                             ON CONFLICT DO NOTHING",
                    )
                    .bind(&group)
                    .bind(&device)
                    .bind(epoch_value(*epoch)?)
                    .bind(pairing_id)
                    .bind(pairing_sealed)
                    .bind(now_ms())
                    .bind(name.operation().as_str())
                    .execute(&mut *tx)
                    .await?;
                    // Another recovery of this device in this group got there first.
                    if inserted.rows_affected() != 1 {
                        return Ok(Committed::ConditionFailed);
                    }
                }
                StepEffect::DeviceAdded {
                    record_version,
                    epoch,
                    archive,
                } => {
                    if !record_at(&mut tx, &group, *record_version).await? {
                        return Ok(Committed::ConditionFailed);
                    }
                    // This recovery's own pending pairing only.
                    let confirmed = sqlx::query(
                        "UPDATE pairings SET state = 'CONFIRMED'
                             WHERE device_group = $1 AND device = $2 AND epoch = $3 AND state = 'PENDING'
                                 AND operation = $4",
                    )
                    .bind(&group)
                    .bind(&device)
                    .bind(epoch_value(*epoch)?)
                    .bind(name.operation().as_str())
                    .execute(&mut *tx)
                    .await?;
                    if confirmed.rows_affected() != 1 {
                        return Ok(Committed::ConditionFailed);
                    }
                    sqlx::query(
                        "INSERT INTO device_group_devices (device_group, device) VALUES ($1, $2)
                             ON CONFLICT DO NOTHING",
                    )
                    .bind(&group)
                    .bind(&device)
                    .execute(&mut *tx)
                    .await?;
                    if let Some(archive) = archive {
                        insert_operation(&mut tx, archive).await?;
                    }
                    insert_event(
                        &mut tx,
                        &group,
                        DeviceGroupEventType::DeviceAdded,
                        &device,
                        Some(name),
                    )
                    .await?;
                }
            }
            tx.commit().await?;
            Ok(Committed::Yes)
        }

        /// Deletes the pending pairing that the AddDevice `operation` (its id) made at round 7, if any:
        /// never one another operation made.
        async fn delete_recovered_pairing(
            connection: &mut $conn,
            operation: &str,
        ) -> Result<(), StoreError> {
            sqlx::query("DELETE FROM pairings WHERE operation = $1 AND state = 'PENDING'")
                .bind(operation)
                .execute(connection)
                .await?;
            Ok(())
        }

        /// Retires the pairing (`group`, `device`, `epoch`) and fails every open operation on it
        /// with `error`: no phase runs on it again. Idempotent.
        async fn retire_pairing_in(
            connection: &mut $conn,
            group: &str,
            device: &str,
            epoch: i64,
            error: Option<&str>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "UPDATE pairings SET state = 'RETIRED'
                     WHERE device_group = $1 AND device = $2 AND epoch = $3",
            )
            .bind(group)
            .bind(device)
            .bind(epoch)
            .execute(&mut *connection)
            .await?;
            sqlx::query(
                "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = $1,
                         update_time_ms = $2
                     WHERE device_group = $3 AND device = $4 AND epoch = $5
                         AND state IN ('PENDING', 'RUNNING')",
            )
            .bind(error)
            .bind(now_ms())
            .bind(group)
            .bind(device)
            .bind(epoch)
            .execute(&mut *connection)
            .await?;
            Ok(())
        }

        /// [`retire_pairing_in`] in a transaction of its own, in the store's lock order (the
        /// device shared, then the group), as a step that retires would take them.
        async fn retire_pairing(
            connection: &mut $conn,
            group: &DeviceGroupName,
            device: &DeviceName,
            epoch: u64,
            error: &str,
        ) -> Result<(), StoreError> {
            let mut tx = begin_immediate(connection).await?;
            sqlx::query(concat!("SELECT name FROM devices WHERE name = $1", $for_share))
                .bind(device.to_string())
                .execute(&mut *tx)
                .await?;
            lock_group(&mut tx, &group.to_string()).await?;
            retire_pairing_in(
                &mut tx,
                &group.to_string(),
                &device.to_string(),
                epoch_value(epoch)?,
                Some(error),
            )
            .await?;
            tx.commit().await?;
            Ok(())
        }

        /// Records one change of a group's devices, now.
        async fn insert_event(
            connection: &mut $conn,
            group: &str,
            kind: DeviceGroupEventType,
            device: &str,
            operation: Option<&OperationName>,
        ) -> Result<(), StoreError> {
            sqlx::query(
                "INSERT INTO device_group_events (device_group, type, device, operation, time_ms)
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(group)
            .bind(event_text(kind))
            .bind(device)
            .bind(operation.map(ToString::to_string))
            .bind(now_ms())
            .execute(connection)
            .await?;
            Ok(())
        }

        /// [`Store::revoke_device`] in one transaction. It locks the device first, which every
        /// exchange step of the device share-locks before its commit: a step commits either before the
        /// revocation (and its round completed before it) or after it, and then finds its device revoked.
        async fn revoke_device(
            connection: &mut $conn,
            device: &DeviceName,
            step_up: Option<&LoginUse>,
            error: &str,
        ) -> Result<Revocation, StoreError> {
            let mut tx = begin_immediate(connection).await?;
            let name = device.to_string();
            // Locked first and until the commit: an exchange step of the device waits for the
            // revocation, or the revocation for it; a second revocation reads this one's result.
            let was: Option<(String,)> =
                sqlx::query_as(concat!("SELECT state FROM devices WHERE name = $1", $for_no_key_update))
                    .bind(&name)
                    .fetch_optional(&mut *tx)
                    .await?;
            let Some(row) = sqlx::query("UPDATE devices SET state = 'REVOKED' WHERE name = $1 RETURNING *")
                .bind(&name)
                .fetch_optional(&mut *tx)
                .await?
            else {
                return Ok(Revocation::NotFound);
            };
            // Dropping the transaction rolls back the state change above.
            if let Some(login) = step_up
                && !use_login(&mut tx, login, None).await?
            {
                return Ok(Revocation::StepUpRefused);
            }
            let now = now_ms();
            sqlx::query(
                "UPDATE operations SET state = 'FAILED', session_sealed = NULL, error = $1,
                     update_time_ms = $2
                 WHERE device = $3 AND state IN ('PENDING', 'RUNNING')",
            )
            .bind(error)
            .bind(now)
            .bind(&name)
            .execute(&mut *tx)
            .await?;
            // Every pairing of the device is between it and the server alone: without the server's
            // half, the device's half signs nothing, with anyone.
            sqlx::query("DELETE FROM pairings WHERE device = $1")
                .bind(&name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(
                "UPDATE passcode_logins SET state = 'REVOKED', state_sealed = NULL, session_sealed = NULL
                 WHERE device = $1 AND state IN ('STARTED', 'FINISHED')",
            )
            .bind(&name)
            .execute(&mut *tx)
            .await?;
            // The group's other devices are told, once: a second revocation changes nothing.
            if was.is_some_and(|(state,)| state == "ACTIVE") {
                let groups: Vec<(String,)> =
                    sqlx::query_as("SELECT device_group FROM device_group_devices WHERE device = $1")
                        .bind(&name)
                        .fetch_all(&mut *tx)
                        .await?;
                for (group,) in &groups {
                    insert_event(
                        &mut tx,
                        group,
                        DeviceGroupEventType::DeviceRevoked,
                        &name,
                        None,
                    )
                    .await?;
                }
            }
            // A backup made by this device (a thief's, perhaps) no longer pushes out the backups it
            // replaced: they are current again, so the sweep never deletes them. The device's own
            // backups stay: one of them may be the owner's only backup, and recovery opens them only
            // with the group's current passcode. Nothing replaced is ever swept before what replaced
            // it (it was replaced first), so every row `replaced_by` names is still here to be found.
            sqlx::query(
                "UPDATE backups SET replaced_time_ms = NULL, replaced_by = NULL
                 WHERE replaced_by IN (SELECT backup FROM backups WHERE device = $1)",
            )
            .bind(&name)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Revocation::Revoked(device_row(&row)?))
        }

        /// Uses up a finished login, if it is still finished, of `login.device` and fresh; with
        /// `reset_version`, only if its reset's `registerStart` was evaluated under that version.
        async fn use_login(
            connection: &mut $conn,
            login: &LoginUse,
            reset_version: Option<u64>,
        ) -> Result<bool, StoreError> {
            let reset_version = reset_version.map(stored_i64).transpose()?;
            let used = sqlx::query(
                "UPDATE passcode_logins SET state = 'USED', session_sealed = NULL, use_time_ms = $1
                 WHERE id = $2 AND device_group = $3 AND device = $4 AND state = 'FINISHED'
                     AND finish_time_ms >= $5 AND ($6 IS NULL OR reset_version = $7)",
            )
            .bind(now_ms())
            .bind(login.name.login().as_str())
            .bind(login.name.device_group_name().to_string())
            .bind(login.device.to_string())
            .bind(login.finished_after_ms)
            .bind(reset_version)
            .bind(reset_version)
            .execute(&mut *connection)
            .await?;
            Ok(used.rows_affected() == 1)
        }

        async fn insert_key(
            connection: &mut $conn,
            group: &DeviceGroupName,
            key: &KeyRecord,
        ) -> Result<KeyRecord, StoreError> {
            // Any conflict means the key exists: its name derives from its group and path, so a
            // row with either key is this key. Naming no constraint matters when another
            // transaction inserts it at the same time: PostgreSQL then checks the name's key too,
            // which would otherwise fail instead of waiting for the other to commit.
            sqlx::query(
                "INSERT INTO mpc_keys (name, device_group, derivation_path, public_key, address, create_time_ms)
                 VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
            )
            .bind(key.name.to_string())
            .bind(group.to_string())
            .bind(&key.derivation_path)
            .bind(&key.public_key)
            .bind(&key.address)
            .bind(now_ms())
            .execute(&mut *connection)
            .await?;
            let row =
                sqlx::query("SELECT * FROM mpc_keys WHERE device_group = $1 AND derivation_path = $2")
                    .bind(group.to_string())
                    .bind(&key.derivation_path)
                    .fetch_one(&mut *connection)
                    .await?;
            key_row(&row)
        }

    };
}

pub(super) use sql_store;
