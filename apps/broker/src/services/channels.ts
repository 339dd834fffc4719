// Channel membership, as a peer changes it with join and leave.
import type { Database } from "@switchboard/db";
import { joinChannel, leaveChannel } from "../store/channels.ts";

export class ChannelService {
  constructor(private readonly db: Database) {}

  join(meshId: string, channel: string, memberId: string): Promise<void> {
    return joinChannel(this.db, meshId, channel, memberId);
  }

  leave(meshId: string, channel: string, memberId: string): Promise<void> {
    return leaveChannel(this.db, meshId, channel, memberId);
  }
}
