// Channel membership, as a peer changes it with join and leave.
import type { Database } from "@switchboard/db";
import { joinChannel, leaveChannel, lockMemberChannels } from "../store/channels.ts";
import { refuse, type Refusal } from "./outcome.ts";

export class ChannelService {
  constructor(
    private readonly db: Database,
    private readonly maxChannelsPerMember: number,
  ) {}

  async join(meshId: string, channel: string, memberId: string): Promise<{ ok: true } | Refusal<"capacity">> {
    const joined = await this.db.transaction(async (tx) => {
      await lockMemberChannels(tx, memberId);
      return joinChannel(tx, meshId, channel, memberId, this.maxChannelsPerMember);
    });
    if (joined) return { ok: true };
    return refuse("capacity", `a member may be in at most ${this.maxChannelsPerMember} channels`);
  }

  leave(meshId: string, channel: string, memberId: string): Promise<void> {
    return leaveChannel(this.db, meshId, channel, memberId);
  }
}
