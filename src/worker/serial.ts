/**
 * Runs async tasks one at a time, in the order they were queued. The engine worker puts all its
 * GPU work through one: WebGPU error scopes are a per-device stack, so a scope held across an await
 * (one generation step) would catch another task's errors if that task ran in between.
 */
export type Serial = <T>(task: () => Promise<T>) => Promise<T>;

export function serial(): Serial {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(task: () => Promise<T>): Promise<T> => {
    const run = tail.then(task);
    tail = run.catch(() => undefined);
    return run;
  };
}
