-- Dify 1.14.1 tables the Loupe connector reads and cleans, with their indexes,
-- written from shared/reference/dify-internals.md §1 (PostgreSQL). No foreign
-- keys: Dify has none at database level. Dify defines uuidv7() itself for the
-- offload table's default; gen_random_uuid() stands in for it here.

CREATE TABLE workflow_runs (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    app_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    type varchar(255) NOT NULL,
    triggered_from varchar(255) NOT NULL,
    version varchar(255) NOT NULL,
    graph text,
    inputs text,
    status varchar(255) NOT NULL,
    outputs text DEFAULT '{}',
    error text,
    elapsed_time double precision NOT NULL DEFAULT 0,
    total_tokens bigint NOT NULL DEFAULT 0,
    total_steps integer DEFAULT 0,
    created_by_role varchar(255) NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    finished_at timestamp without time zone,
    exceptions_count integer DEFAULT 0,
    CONSTRAINT workflow_run_pkey PRIMARY KEY (id)
);
CREATE INDEX workflow_run_triggerd_from_idx ON workflow_runs (tenant_id, app_id, triggered_from);
CREATE INDEX workflow_run_created_at_id_idx ON workflow_runs (created_at, id);

CREATE TABLE workflow_node_executions (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    app_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    triggered_from varchar(255) NOT NULL,
    workflow_run_id uuid,
    index integer NOT NULL,
    predecessor_node_id varchar(255),
    node_execution_id varchar(255),
    node_id varchar(255) NOT NULL,
    node_type varchar(255) NOT NULL,
    title varchar(255) NOT NULL,
    inputs text,
    process_data text,
    outputs text,
    status varchar(255) NOT NULL,
    error text,
    elapsed_time double precision NOT NULL DEFAULT 0,
    execution_metadata text,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    created_by_role varchar(255) NOT NULL,
    created_by uuid NOT NULL,
    finished_at timestamp without time zone,
    CONSTRAINT workflow_node_execution_pkey PRIMARY KEY (id)
);
CREATE INDEX workflow_node_execution_workflow_run_id_idx ON workflow_node_executions (workflow_run_id);
CREATE INDEX workflow_node_execution_node_run_idx ON workflow_node_executions (tenant_id, app_id, workflow_id, triggered_from, node_id);
CREATE INDEX workflow_node_execution_id_idx ON workflow_node_executions (tenant_id, app_id, workflow_id, triggered_from, node_execution_id);
CREATE INDEX workflow_node_executions_tenant_id_idx ON workflow_node_executions (tenant_id, workflow_id, node_id, created_at DESC);

CREATE TABLE workflow_node_execution_offload (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP,
    tenant_id uuid NOT NULL,
    app_id uuid NOT NULL,
    node_execution_id uuid,
    type varchar(20) NOT NULL,
    file_id uuid NOT NULL,
    CONSTRAINT workflow_node_execution_offload_pkey PRIMARY KEY (id),
    CONSTRAINT workflow_node_execution_offload_node_execution_id_key UNIQUE (node_execution_id, type)
);

CREATE TABLE workflow_app_logs (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    app_id uuid NOT NULL,
    workflow_id uuid NOT NULL,
    workflow_run_id uuid NOT NULL,
    created_from varchar(255) NOT NULL,
    created_by_role varchar(255) NOT NULL,
    created_by uuid NOT NULL,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    CONSTRAINT workflow_app_log_pkey PRIMARY KEY (id)
);
CREATE INDEX workflow_app_log_app_idx ON workflow_app_logs (tenant_id, app_id);
CREATE INDEX workflow_app_log_workflow_run_id_idx ON workflow_app_logs (workflow_run_id);

CREATE TABLE messages (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    app_id uuid NOT NULL,
    model_provider varchar(255),
    model_id varchar(255),
    override_model_configs text,
    conversation_id uuid NOT NULL,
    inputs json NOT NULL,
    query text NOT NULL,
    message json NOT NULL,
    message_tokens integer NOT NULL DEFAULT 0,
    message_unit_price numeric(10,4) NOT NULL,
    message_price_unit numeric(10,7) NOT NULL DEFAULT 0.001,
    answer text NOT NULL,
    answer_tokens integer NOT NULL DEFAULT 0,
    answer_unit_price numeric(10,4) NOT NULL,
    answer_price_unit numeric(10,7) NOT NULL DEFAULT 0.001,
    parent_message_id uuid,
    provider_response_latency double precision NOT NULL DEFAULT 0,
    total_price numeric(10,7),
    currency varchar(255) NOT NULL,
    status varchar(255) NOT NULL DEFAULT 'normal',
    error text,
    message_metadata text,
    invoke_from varchar(255),
    from_source varchar(255) NOT NULL,
    from_end_user_id uuid,
    from_account_id uuid,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    updated_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    agent_based boolean NOT NULL DEFAULT false,
    workflow_run_id uuid,
    app_mode varchar(255),
    CONSTRAINT message_pkey PRIMARY KEY (id)
);
CREATE INDEX message_app_id_idx ON messages (app_id, created_at);
CREATE INDEX message_conversation_id_idx ON messages (conversation_id);
CREATE INDEX message_end_user_idx ON messages (app_id, from_source, from_end_user_id);
CREATE INDEX message_account_idx ON messages (app_id, from_source, from_account_id);
CREATE INDEX message_workflow_run_id_idx ON messages (conversation_id, workflow_run_id);
CREATE INDEX message_app_mode_idx ON messages (app_mode);
CREATE INDEX message_created_at_id_idx ON messages (created_at, id);

CREATE TABLE conversations (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    app_id uuid NOT NULL,
    app_model_config_id uuid,
    model_provider varchar(255),
    model_id varchar(255),
    override_model_configs text,
    mode varchar(255) NOT NULL,
    name varchar(255) NOT NULL,
    summary text,
    introduction text,
    system_instruction text,
    inputs json NOT NULL,
    system_instruction_tokens integer NOT NULL DEFAULT 0,
    status varchar(255) NOT NULL DEFAULT 'normal',
    invoke_from varchar(255),
    from_source varchar(255) NOT NULL,
    from_end_user_id uuid,
    from_account_id uuid,
    read_at timestamp without time zone,
    read_account_id uuid,
    dialogue_count integer NOT NULL DEFAULT 0,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    updated_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    is_deleted boolean NOT NULL DEFAULT false,
    CONSTRAINT conversation_pkey PRIMARY KEY (id)
);
CREATE INDEX conversation_app_from_user_idx ON conversations (app_id, from_source, from_end_user_id);
CREATE INDEX conversation_app_created_at_idx ON conversations (app_id, created_at DESC) WHERE is_deleted IS false;
CREATE INDEX conversation_app_updated_at_idx ON conversations (app_id, updated_at DESC) WHERE is_deleted IS false;

CREATE TABLE message_feedbacks (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    app_id uuid NOT NULL,
    conversation_id uuid NOT NULL,
    message_id uuid NOT NULL,
    rating varchar(255) NOT NULL,
    content text,
    from_source varchar(255) NOT NULL,
    from_end_user_id uuid,
    from_account_id uuid,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    updated_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    CONSTRAINT message_feedback_pkey PRIMARY KEY (id)
);
CREATE INDEX message_feedback_app_idx ON message_feedbacks (app_id);
CREATE INDEX message_feedback_message_idx ON message_feedbacks (message_id, from_source);
CREATE INDEX message_feedback_conversation_idx ON message_feedbacks (conversation_id, from_source, rating);

CREATE TABLE end_users (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    app_id uuid,
    type varchar(255) NOT NULL,
    external_user_id varchar(255),
    name varchar(255),
    is_anonymous boolean NOT NULL DEFAULT true,
    session_id varchar(255) NOT NULL,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    updated_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    CONSTRAINT end_user_pkey PRIMARY KEY (id)
);
CREATE INDEX end_user_session_id_idx ON end_users (session_id, type);
CREATE INDEX end_user_tenant_session_id_idx ON end_users (tenant_id, session_id, type);

CREATE TABLE apps (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    name varchar(255) NOT NULL,
    description text NOT NULL DEFAULT '',
    mode varchar(255) NOT NULL,
    icon_type varchar(255),
    icon varchar(255),
    icon_background varchar(255),
    app_model_config_id uuid,
    workflow_id uuid,
    status varchar(255) NOT NULL DEFAULT 'normal',
    enable_site boolean NOT NULL DEFAULT true,
    enable_api boolean NOT NULL DEFAULT true,
    api_rpm integer NOT NULL DEFAULT 0,
    api_rph integer NOT NULL DEFAULT 0,
    is_demo boolean NOT NULL DEFAULT false,
    is_public boolean NOT NULL DEFAULT false,
    is_universal boolean NOT NULL DEFAULT false,
    tracing text,
    max_active_requests integer,
    created_by uuid,
    updated_by uuid,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    updated_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    use_icon_as_answer_icon boolean NOT NULL DEFAULT false,
    CONSTRAINT app_pkey PRIMARY KEY (id)
);
CREATE INDEX app_tenant_id_idx ON apps (tenant_id);

CREATE TABLE upload_files (
    id uuid NOT NULL DEFAULT gen_random_uuid(),
    tenant_id uuid NOT NULL,
    storage_type varchar(255) NOT NULL,
    key varchar(255) NOT NULL,
    name varchar(255) NOT NULL,
    size integer NOT NULL,
    extension varchar(255) NOT NULL,
    mime_type varchar(255),
    created_by_role varchar(255) NOT NULL DEFAULT 'account',
    created_by uuid NOT NULL,
    created_at timestamp without time zone NOT NULL DEFAULT CURRENT_TIMESTAMP(0),
    used boolean NOT NULL DEFAULT false,
    used_by uuid,
    used_at timestamp without time zone,
    hash varchar(255),
    source_url text NOT NULL DEFAULT '',
    CONSTRAINT upload_file_pkey PRIMARY KEY (id)
);
CREATE INDEX upload_file_tenant_idx ON upload_files (tenant_id);
