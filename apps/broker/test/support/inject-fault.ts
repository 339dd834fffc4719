// Preloaded into a broker under test (BUN_OPTIONS=--preload): on SIGUSR2 it
// throws an error that nothing catches, its message holding the admin token,
// as a bug that printed a secret would.
process.on("SIGUSR2", () => {
  setTimeout(() => {
    throw new Error(`injected fault near ${process.env.ADMIN_TOKEN}`);
  });
});
