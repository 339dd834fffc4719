// Whether a lock's holder still runs: shared by the data directory's lock and
// the test kit's, which must not load the database drivers to ask.
/** Whether a process with this pid runs on this machine (one we may not signal counts). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}
