// A wallet's use of the adapters, for the type checker only (never run): what must compile does,
// and each `@ts-expect-error` marks a misuse the declarations must refuse.
import { createWalletClient, custom, http, type LocalAccount } from 'viem';
import { mainnet } from 'viem/chains';

import { createEip1193Provider, ProviderRpcError, type SigningRequest, type WaasClient } from '../../pkg/index.js';
import { toViemAccount } from '../../pkg/viem.js';

export async function wallet(client: WaasClient, mpcKey: string, address: `0x${string}`) {
  const prompt = async (request: SigningRequest) => {
    if (request.kind === 'transaction') return { passkey: true as const };
    if (request.kind === 'typedData') return null;
    return window.confirm(String(request.message)) ? { passcode: '123456' } : undefined;
  };
  const account: LocalAccount = toViemAccount(client, { mpcKey, address, unlock: prompt });
  const provider = createEip1193Provider({ client, mpcKey, address, chainId: 1n, unlock: prompt, rpcUrl: new URL('https://rpc.example') });

  const walletClient = createWalletClient({ account, chain: mainnet, transport: http() });
  const viaProvider = createWalletClient({ account: address, chain: mainnet, transport: custom(provider) });
  const signature: `0x${string}` = await walletClient.signMessage({ message: 'hello' });
  const typed: `0x${string}` = await walletClient.signTypedData({
    types: { Mail: [{ name: 'contents', type: 'string' }] },
    primaryType: 'Mail',
    message: { contents: 'hi' },
  });

  // The SDK's own Signature says what it signed.
  const signed = await client.signMessage(mpcKey, 'hello', { passcode: '123456' });
  const signedMessage: `0x${string}` | undefined = signed.typedPayload?.type === 'eip191' ? signed.typedPayload.message : undefined;
  const transaction = await client.signTransaction(mpcKey, { chainId: 1, nonce: 0, gas: 21000, gasPrice: 1n }, { passkey: true });
  const payload = transaction.signature.typedPayload;
  const signedChain = payload?.type === 'transaction' ? payload.transaction.chainId : undefined;

  const accounts: [`0x${string}`] = await provider.request({ method: 'eth_requestAccounts' });
  const chainId: `0x${string}` = await provider.request({ method: 'eth_chainId' });
  const personal: `0x${string}` = await provider.request({ method: 'personal_sign', params: ['0x68656c6c6f', address] });
  const raw: `0x${string}` = await provider.request({ method: 'eth_signTransaction', params: [{ to: address, value: 1n, gasLimit: 21000 }] });
  const hash: `0x${string}` = await provider.request({ method: 'eth_sendTransaction', params: [{ from: address, to: address, input: '0x' }] });
  const balance: unknown = await provider.request({ method: 'eth_getBalance', params: [address, 'latest'] });
  provider.on('connect', ({ chainId }) => console.log(chainId)).removeListener('connect', console.log);

  // @ts-expect-error: eth_chainId resolves 0x hex, not a number
  const wrong: number = await provider.request({ method: 'eth_chainId' });
  // @ts-expect-error: personal_sign takes [message, address]
  await provider.request({ method: 'personal_sign', params: ['0x00'] });
  // @ts-expect-error: the account's options need the address
  toViemAccount(client, { mpcKey, unlock: prompt });
  // @ts-expect-error: an unlock function gives an Unlock, not a passcode string
  createEip1193Provider({ client, mpcKey, address, chainId: 1, unlock: () => '123456' });

  try {
    await viaProvider.sendTransaction({ to: address, value: 1n });
  } catch (error) {
    if (error instanceof ProviderRpcError && error.code === 4001) return null;
  }
  return { signature, typed, signedMessage, signedChain, accounts, chainId, personal, raw, hash, balance, wrong };
}
