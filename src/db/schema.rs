//! Diesel table definitions, kept by hand in step with `migrations/`.

diesel::table! {
    organizations (id) {
        id -> Uuid,
        name -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    projects (id) {
        id -> Uuid,
        organization_id -> Uuid,
        name -> Text,
        repository_url -> Text,
        default_branch -> Text,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        test_install -> Nullable<Text>,
        test_command -> Nullable<Text>,
    }
}

diesel::table! {
    findings (id) {
        id -> Uuid,
        project_id -> Uuid,
        project_version_id -> Nullable<Uuid>,
        vulnerability_id -> Text,
        aliases -> Array<Text>,
        severity -> Text,
        summary -> Text,
        package_name -> Text,
        ecosystem -> Text,
        purl -> Nullable<Text>,
        installed_version -> Text,
        fixed_versions -> Array<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    assessments (id) {
        id -> Uuid,
        finding_id -> Uuid,
        status -> Text,
        justification -> Nullable<Text>,
        remediation_branch_name -> Nullable<Text>,
        remediation_pr_url -> Nullable<Text>,
        remediation_pr_number -> Nullable<Int4>,
        remediation_status -> Nullable<Text>,
        remediation_confidence -> Nullable<Float8>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        remediation_fix_id -> Nullable<Uuid>,
    }
}

diesel::table! {
    remediation_fixes (id) {
        id -> Uuid,
        project_id -> Uuid,
        ecosystem -> Text,
        package_name -> Text,
        branch_name -> Text,
        forge -> Nullable<Text>,
        state -> Nullable<Text>,
        target_version -> Nullable<Text>,
        advisories -> Array<Text>,
        pr_number -> Nullable<Int4>,
        pr_url -> Nullable<Text>,
        merged_at -> Nullable<Timestamptz>,
        closed_at -> Nullable<Timestamptz>,
        checked_at -> Nullable<Timestamptz>,
        left_alone_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_deliveries (forge, delivery_id) {
        forge -> Text,
        delivery_id -> Text,
        event -> Text,
        outcome -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    operations (id) {
        id -> Uuid,
        organization_id -> Uuid,
        kind -> Text,
        status -> Text,
        resource_type -> Text,
        resource_id -> Uuid,
        project_id -> Uuid,
        project_version_id -> Nullable<Uuid>,
        step -> Nullable<Text>,
        attempts -> Int4,
        output -> Nullable<Jsonb>,
        error_message -> Nullable<Text>,
        created_at -> Timestamptz,
        started_at -> Nullable<Timestamptz>,
        finished_at -> Nullable<Timestamptz>,
        heartbeat_at -> Nullable<Timestamptz>,
        updated_at -> Timestamptz,
        cancel_requested_at -> Nullable<Timestamptz>,
        unsettled_starts -> Int4,
        claimed_by -> Nullable<Text>,
    }
}

diesel::table! {
    operation_events (id) {
        id -> Int8,
        operation_id -> Uuid,
        at -> Timestamptz,
        kind -> Text,
        status -> Nullable<Text>,
        step -> Nullable<Text>,
        attempt -> Nullable<Int4>,
        message -> Nullable<Text>,
    }
}

diesel::table! {
    outbox (id) {
        id -> Int8,
        operation_id -> Uuid,
        payload -> Jsonb,
        created_at -> Timestamptz,
        published_at -> Nullable<Timestamptz>,
        publish_attempts -> Int4,
        last_error -> Nullable<Text>,
        next_attempt_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    console_audit (id) {
        id -> Int8,
        at -> Timestamptz,
        actor -> Text,
        actor_organization -> Uuid,
        action -> Text,
        target -> Text,
        outcome -> Text,
        details -> Nullable<Jsonb>,
    }
}

diesel::joinable!(projects -> organizations (organization_id));
diesel::joinable!(findings -> projects (project_id));
diesel::joinable!(assessments -> findings (finding_id));
diesel::joinable!(operations -> projects (project_id));
diesel::joinable!(operation_events -> operations (operation_id));
diesel::joinable!(remediation_fixes -> projects (project_id));
diesel::joinable!(assessments -> remediation_fixes (remediation_fix_id));

diesel::allow_tables_to_appear_in_same_query!(
    organizations,
    projects,
    findings,
    assessments,
    operations,
    operation_events,
    outbox,
    remediation_fixes,
    webhook_deliveries,
    console_audit,
);
