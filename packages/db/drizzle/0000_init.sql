CREATE TABLE "audit_log" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"at" timestamp with time zone DEFAULT now() NOT NULL,
	"event" text NOT NULL,
	"mesh_id" uuid,
	"member_id" uuid,
	"meta" jsonb DEFAULT '{}'::jsonb NOT NULL
);
--> statement-breakpoint
CREATE TABLE "broker_instances" (
	"id" text PRIMARY KEY NOT NULL,
	"hostname" text NOT NULL,
	"pid" integer NOT NULL,
	"started_at" timestamp with time zone DEFAULT now() NOT NULL,
	"lease_expires_at" timestamp with time zone NOT NULL,
	"stopped_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "channel_members" (
	"mesh_id" uuid NOT NULL,
	"channel" text NOT NULL,
	"member_id" uuid NOT NULL,
	"joined_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "channel_members_mesh_id_channel_member_id_pk" PRIMARY KEY("mesh_id","channel","member_id")
);
--> statement-breakpoint
CREATE TABLE "deliveries" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"message_id" uuid NOT NULL,
	"recipient_member_id" uuid NOT NULL,
	"priority" text NOT NULL,
	"state" text DEFAULT 'queued' NOT NULL,
	"lease_presence_id" uuid,
	"lease_expires_at" timestamp with time zone,
	"attempt" integer DEFAULT 0 NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL,
	"delivered_at" timestamp with time zone,
	"acked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "hello_replays" (
	"signature" text PRIMARY KEY NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "members" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"mesh_id" uuid NOT NULL,
	"pubkey" text NOT NULL,
	"display_name" text NOT NULL,
	"tags" text[] DEFAULT '{}'::text[] NOT NULL,
	"role" text DEFAULT 'member' NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "meshes" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"slug" text NOT NULL,
	"name" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	CONSTRAINT "meshes_slug_unique" UNIQUE("slug")
);
--> statement-breakpoint
CREATE TABLE "messages" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"mesh_id" uuid NOT NULL,
	"sender_member_id" uuid NOT NULL,
	"client_id" text,
	"target_spec" text NOT NULL,
	"priority" text NOT NULL,
	"nonce" text NOT NULL,
	"ciphertext" text NOT NULL,
	"reply_to" uuid,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "pending_hook_statuses" (
	"id" bigserial PRIMARY KEY NOT NULL,
	"member_id" uuid NOT NULL,
	"session_id" text,
	"pid" integer,
	"cwd" text,
	"status" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"expires_at" timestamp with time zone NOT NULL
);
--> statement-breakpoint
CREATE TABLE "presences" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"mesh_id" uuid NOT NULL,
	"member_id" uuid NOT NULL,
	"instance_id" text NOT NULL,
	"session_id" text NOT NULL,
	"pid" integer,
	"cwd" text,
	"display_name" text NOT NULL,
	"status" text DEFAULT 'idle' NOT NULL,
	"status_source" text DEFAULT 'manual' NOT NULL,
	"status_updated_at" timestamp with time zone DEFAULT now() NOT NULL,
	"connected_at" timestamp with time zone DEFAULT now() NOT NULL,
	"last_ping_at" timestamp with time zone DEFAULT now() NOT NULL,
	"disconnected_at" timestamp with time zone
);
--> statement-breakpoint
CREATE TABLE "tokens" (
	"id" uuid PRIMARY KEY DEFAULT gen_random_uuid() NOT NULL,
	"member_id" uuid NOT NULL,
	"kind" text NOT NULL,
	"token_hash" text NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"revoked_at" timestamp with time zone,
	CONSTRAINT "tokens_token_hash_unique" UNIQUE("token_hash")
);
--> statement-breakpoint
ALTER TABLE "channel_members" ADD CONSTRAINT "channel_members_mesh_id_meshes_id_fk" FOREIGN KEY ("mesh_id") REFERENCES "public"."meshes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "channel_members" ADD CONSTRAINT "channel_members_member_id_members_id_fk" FOREIGN KEY ("member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_message_id_messages_id_fk" FOREIGN KEY ("message_id") REFERENCES "public"."messages"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "deliveries" ADD CONSTRAINT "deliveries_recipient_member_id_members_id_fk" FOREIGN KEY ("recipient_member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "members" ADD CONSTRAINT "members_mesh_id_meshes_id_fk" FOREIGN KEY ("mesh_id") REFERENCES "public"."meshes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_mesh_id_meshes_id_fk" FOREIGN KEY ("mesh_id") REFERENCES "public"."meshes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_sender_member_id_members_id_fk" FOREIGN KEY ("sender_member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "pending_hook_statuses" ADD CONSTRAINT "pending_hook_statuses_member_id_members_id_fk" FOREIGN KEY ("member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "presences" ADD CONSTRAINT "presences_mesh_id_meshes_id_fk" FOREIGN KEY ("mesh_id") REFERENCES "public"."meshes"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "presences" ADD CONSTRAINT "presences_member_id_members_id_fk" FOREIGN KEY ("member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
ALTER TABLE "tokens" ADD CONSTRAINT "tokens_member_id_members_id_fk" FOREIGN KEY ("member_id") REFERENCES "public"."members"("id") ON DELETE cascade ON UPDATE no action;--> statement-breakpoint
CREATE INDEX "audit_log_at_idx" ON "audit_log" USING btree ("at");--> statement-breakpoint
CREATE INDEX "channel_members_member_idx" ON "channel_members" USING btree ("member_id");--> statement-breakpoint
CREATE UNIQUE INDEX "deliveries_message_recipient_key" ON "deliveries" USING btree ("message_id","recipient_member_id");--> statement-breakpoint
CREATE INDEX "deliveries_queued_idx" ON "deliveries" USING btree ("recipient_member_id","id") WHERE state = 'queued';--> statement-breakpoint
CREATE INDEX "deliveries_leased_idx" ON "deliveries" USING btree ("lease_expires_at") WHERE state = 'leased';--> statement-breakpoint
CREATE INDEX "deliveries_lease_presence_idx" ON "deliveries" USING btree ("lease_presence_id") WHERE state = 'leased';--> statement-breakpoint
CREATE INDEX "hello_replays_expires_idx" ON "hello_replays" USING btree ("expires_at");--> statement-breakpoint
CREATE UNIQUE INDEX "members_mesh_pubkey_key" ON "members" USING btree ("mesh_id","pubkey");--> statement-breakpoint
CREATE INDEX "members_tags_idx" ON "members" USING gin ("tags");--> statement-breakpoint
CREATE UNIQUE INDEX "messages_sender_client_key" ON "messages" USING btree ("sender_member_id","client_id");--> statement-breakpoint
CREATE INDEX "messages_expires_idx" ON "messages" USING btree ("expires_at");--> statement-breakpoint
CREATE INDEX "pending_hook_statuses_member_idx" ON "pending_hook_statuses" USING btree ("member_id");--> statement-breakpoint
CREATE INDEX "presences_live_mesh_idx" ON "presences" USING btree ("mesh_id") WHERE disconnected_at IS NULL;--> statement-breakpoint
CREATE INDEX "presences_live_member_idx" ON "presences" USING btree ("member_id") WHERE disconnected_at IS NULL;--> statement-breakpoint
CREATE INDEX "presences_live_instance_idx" ON "presences" USING btree ("instance_id") WHERE disconnected_at IS NULL;--> statement-breakpoint
CREATE UNIQUE INDEX "presences_live_session_key" ON "presences" USING btree ("member_id","session_id") WHERE disconnected_at IS NULL;--> statement-breakpoint
CREATE INDEX "presences_gone_idx" ON "presences" USING btree ("disconnected_at") WHERE disconnected_at IS NOT NULL;--> statement-breakpoint
CREATE INDEX "tokens_member_idx" ON "tokens" USING btree ("member_id");