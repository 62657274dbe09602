using System.Collections.Concurrent;
using StackExchange.Redis;

namespace QuotaProxy.Enforcement.Redis;

/// <summary>
/// Group commit for <c>debit.lua</c>: one call in flight per hash tag; the decisions that arrive while it is
/// in flight go together in the next call (up to <see cref="MaxBatch"/>), each decided in turn exactly as
/// alone, in the order they came. At low load a decision goes at once, alone: no added latency. Under load
/// Redis runs one script call per batch instead of one per decision, and the proxy sends, reads and
/// completes one reply per batch. The next batch leaves before the replies of the last are handed out, and a
/// burst that queued more than one batch leaves as that many calls at once.
/// </summary>
internal sealed class DebitBatches(IConnectionMultiplexer connection)
{
    /// <summary>The most decisions one call carries.</summary>
    public const int MaxBatch = 64;

    private readonly ConcurrentDictionary<string, TagQueue> _queues = new(StringComparer.Ordinal);

    /// <summary>Calls that carried more than one decision (tests read it: batches did form).</summary>
    public long Batched => Interlocked.Read(ref _batched);

    /// <summary>Arrays (a decision's KEYS or ARGV) a batch sent once for several decisions (tests read it).</summary>
    public long Shared => Interlocked.Read(ref _shared);

    /// <summary>The most calls one hash tag had in flight at once (tests read it: a burst went in together).</summary>
    public long MostInFlight => Interlocked.Read(ref _mostInFlight);

    private long _batched;
    private long _shared;
    private long _mostInFlight = 1;

    /// <summary>The decision's own reply (as <c>debit.lua</c> alone would give it), or its error.</summary>
    public Task<RedisResult> EvaluateAsync(string tag, RedisKey[] keys, RedisValue[] args)
    {
        var queue = _queues.TryGetValue(tag, out var found) ? found : _queues.GetOrAdd(tag, static _ => new TagQueue());
        var pending = new Pending(keys, args);
        bool start;
        lock (queue)
        {
            queue.Waiting.Enqueue(pending);
            start = !queue.Sending;
            queue.Sending = true;
        }

        if (start)
        {
            _ = SendAsync(queue);
        }

        return pending.Reply.Task;
    }

    private async Task SendAsync(TagQueue queue)
    {
        // The calls in flight, oldest first. Usually one: what arrives while it is in flight goes in the next.
        // A burst that queued more than one batch goes in as many calls at once, not one round trip after
        // another (at a replica's cold start, 400 requests at once waited out seven sequential round trips,
        // each reply's continuation behind the burst in the thread pool's queue, and hundreds missed the
        // 50 ms timeout). Redis runs one connection's calls in the order they were sent, so the decisions are
        // still decided in the order they came.
        var inFlight = new Queue<(Pending[] Batch, Task<RedisResult> Call)>();
        SendWaiting(queue, inFlight);
        while (inFlight.TryDequeue(out var sent))
        {
            RedisResult? result = null;
            Exception? error = null;
            try
            {
                result = await sent.Call.ConfigureAwait(false);
            }
            catch (Exception ex)
            {
                error = ex;
            }

            SendWaiting(queue, inFlight);
            HandOut(sent.Batch, result, error);
        }
    }

    /// <summary>
    /// Sends the decisions waiting, in calls of up to <see cref="MaxBatch"/>; with none waiting and none in
    /// flight, marks the queue idle (the next decision to come starts a new sender).
    /// </summary>
    private void SendWaiting(TagQueue queue, Queue<(Pending[] Batch, Task<RedisResult> Call)> inFlight)
    {
        while (Take(queue, idleWhenEmpty: inFlight.Count == 0) is { } batch)
        {
            inFlight.Enqueue((batch, Send(batch)));
        }

        var most = Interlocked.Read(ref _mostInFlight);
        while (inFlight.Count > most)
        {
            var seen = Interlocked.CompareExchange(ref _mostInFlight, inFlight.Count, most);
            if (seen == most)
            {
                break;
            }

            most = seen;
        }
    }

    /// <summary>The decisions waiting, up to <see cref="MaxBatch"/>; null when none are (and the queue marked idle if <paramref name="idleWhenEmpty"/>).</summary>
    private static Pending[]? Take(TagQueue queue, bool idleWhenEmpty)
    {
        lock (queue)
        {
            if (queue.Waiting.Count == 0)
            {
                if (idleWhenEmpty)
                {
                    queue.Sending = false;
                }

                return null;
            }

            var batch = new Pending[Math.Min(queue.Waiting.Count, MaxBatch)];
            for (var i = 0; i < batch.Length; i++)
            {
                batch[i] = queue.Waiting.Dequeue();
            }

            return batch;
        }
    }

    /// <summary>The batch's call; whatever fails in sending it (a disposed connection) is that call's error, so the queue never stalls.</summary>
    private Task<RedisResult> Send(Pending[] batch)
    {
        try
        {
            return SendUnguarded(batch);
        }
        catch (Exception ex)
        {
            return Task.FromException<RedisResult>(ex);
        }
    }

    private Task<RedisResult> SendUnguarded(Pending[] batch)
    {
        var database = connection.GetDatabase();
        if (batch.Length == 1)
        {
            return EvaluateAsync(database, batch[0].Keys, batch[0].Args);
        }

        Interlocked.Increment(ref _batched);
        // A decision whose KEYS or ARGV is the very array of an earlier one in the batch (a pool's shared keys, a
        // node's shared ARGV: the commonest decisions share both) is sent as that array's number, negated, not
        // again: Redis reads and copies each array once per call.
        var keySets = new RedisKey[batch.Length][];
        var argSets = new RedisValue[batch.Length][];
        int keySetCount = 0, argSetCount = 0, keyCount = 0, argCount = 2 + (2 * batch.Length);
        var counts = new RedisValue[2 * batch.Length];
        for (var d = 0; d < batch.Length; d++)
        {
            var pending = batch[d];
            counts[2 * d] = Share(keySets, ref keySetCount, pending.Keys, ref keyCount);
            counts[(2 * d) + 1] = Share(argSets, ref argSetCount, pending.Args, ref argCount);
        }

        Interlocked.Add(ref _shared, (2 * batch.Length) - keySetCount - argSetCount);
        var keys = new RedisKey[keyCount];
        var args = new RedisValue[argCount];
        args[0] = "";
        args[1] = batch.Length;
        counts.CopyTo(args, 2);
        var k = 0;
        for (var s = 0; s < keySetCount; s++)
        {
            keySets[s].CopyTo(keys, k);
            k += keySets[s].Length;
        }

        var a = 2 + (2 * batch.Length);
        for (var s = 0; s < argSetCount; s++)
        {
            argSets[s].CopyTo(args, a);
            a += argSets[s].Length;
        }

        return EvaluateAsync(database, keys, args);
    }

    /// <summary>
    /// What the batch says of a decision's array: its length when it is new (it is sent, and counted into
    /// <paramref name="total"/>), or minus the 1-based number of the earlier array it is.
    /// </summary>
    private static long Share<T>(T[][] sets, ref int setCount, T[] array, ref int total)
    {
        for (var s = 0; s < setCount; s++)
        {
            if (ReferenceEquals(sets[s], array))
            {
                return -(s + 1);
            }
        }

        sets[setCount++] = array;
        total += array.Length;
        return array.Length;
    }

    /// <summary>EVALSHA by the script's precomputed hash; EVAL (which loads it again) when the server does not hold it.</summary>
    private static async Task<RedisResult> EvaluateAsync(IDatabase database, RedisKey[] keys, RedisValue[] args)
    {
        try
        {
            return await database.ScriptEvaluateAsync(DebitScript.Script.Sha1, keys, args).ConfigureAwait(false);
        }
        catch (RedisServerException ex) when (ex.Message.StartsWith("NOSCRIPT", StringComparison.Ordinal))
        {
            return await database.ScriptEvaluateAsync(DebitScript.Script.Source, keys, args).ConfigureAwait(false);
        }
    }

    private static void HandOut(Pending[] batch, RedisResult? result, Exception? error)
    {
        if (error is not null)
        {
            foreach (var pending in batch)
            {
                pending.Reply.TrySetException(error);
            }

            return;
        }

        if (batch.Length == 1)
        {
            batch[0].Reply.TrySetResult(result!);
            return;
        }

        if (result!.Resp2Type != ResultType.Array || (RedisResult[])result! is not { } replies || replies.Length != batch.Length)
        {
            var unexpected = new RedisException($"debit.lua answered a batch of {batch.Length} with {result}.");
            foreach (var pending in batch)
            {
                pending.Reply.TrySetException(unexpected);
            }

            return;
        }

        for (var d = 0; d < batch.Length; d++)
        {
            if (replies[d].Resp2Type == ResultType.Error)
            {
                batch[d].Reply.TrySetException(new RedisServerException(replies[d].ToString()!));
            }
            else
            {
                batch[d].Reply.TrySetResult(replies[d]);
            }
        }
    }

    private sealed class TagQueue
    {
        public Queue<Pending> Waiting { get; } = new();

        public bool Sending { get; set; }
    }

    private sealed class Pending(RedisKey[] keys, RedisValue[] args)
    {
        public RedisKey[] Keys => keys;

        public RedisValue[] Args => args;

        /// <summary>Its continuation runs on the thread pool: the reply's reader hands out the whole batch, then moves on.</summary>
        public TaskCompletionSource<RedisResult> Reply { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}
