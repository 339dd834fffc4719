CREATE UNLOGGED TABLE "ephemeral_relay" (
	"message_id" uuid NOT NULL,
	"instance_id" text NOT NULL,
	"mesh_id" uuid NOT NULL,
	"sender_pubkey" text NOT NULL,
	"target_spec" text NOT NULL,
	"priority" text NOT NULL,
	"nonce" text NOT NULL,
	"ciphertext" text NOT NULL,
	"reply_to" uuid,
	"sent_at" timestamp with time zone NOT NULL,
	"created_at" timestamp with time zone DEFAULT now() NOT NULL,
	"recipients" jsonb NOT NULL,
	CONSTRAINT "ephemeral_relay_instance_id_message_id_pk" PRIMARY KEY("instance_id","message_id")
);
--> statement-breakpoint
CREATE INDEX "ephemeral_relay_created_idx" ON "ephemeral_relay" USING btree ("created_at");