import { useEffect } from 'react';
import { useEngineStore } from '../state/engineStore';
import { startEngineWorker } from '../worker/client';

/** Starts the engine worker for the lifetime of the component and feeds its events to the store. */
export function useEngine(): void {
  useEffect(() => {
    const client = startEngineWorker((e) => {
      useEngineStore.getState().apply(e);
      if (e.type === 'gpu-ready') client.send({ type: 'selftest' });
    });
    client.send({ type: 'init' });
    return () => client.terminate();
  }, []);
}
