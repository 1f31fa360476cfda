using System.Collections.Concurrent;
using EptFuzz.Harness.Cases;

namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// Writes the queue's files on a thread of its own, in the order they were asked for, so that a
/// worker that keeps a case only hands it over: printing the case, creating the file and renaming
/// it into place (a file-system journal transaction on a disk, several times a tmpfs's cost) stay
/// off the loop that runs cases. Each entry is still written to a temporary and renamed, so a
/// queue file is never torn. What a kill loses is the entries not yet written (at most
/// <see cref="Capacity"/>, usually none): queue entries only guide the campaign, so that costs
/// coverage that the campaign finds again, never a finding (findings are written by the worker
/// that found them, durably, before they are reported). A cull's moves go through the same
/// order, after the writes of the entries they move.
/// </summary>
internal sealed class QueueWriter : IDisposable
{
    /// <summary>Jobs waiting at most; a worker that keeps cases faster than the disk takes them waits.</summary>
    public const int Capacity = 4096;

    private readonly BlockingCollection<Job> jobs = new(Capacity);
    private readonly Thread thread;
    private readonly Action<Exception> failed;
    private readonly object addGate = new();
    private bool completed;
    private Exception? failure;

    /// <param name="failed">Called once, on the writer's thread, with the first exception a job threw; later jobs are dropped.</param>
    public QueueWriter(Action<Exception> failed)
    {
        this.failed = failed;
        thread = new Thread(Drain) { IsBackground = true, Name = "eptfuzz queue writer" };
        thread.Start();
    }

    /// <summary>Writes <paramref name="entry"/> to <paramref name="path"/> (through a temporary and a rename), after every job asked for before.</summary>
    public void Write(string path, EptCase entry) => Add(new Job(path, entry, null));

    /// <summary>Moves <paramref name="from"/> to <paramref name="to"/> (replacing it), after every job asked for before.</summary>
    public void Move(string from, string to) => Add(new Job(from, null, to));

    /// <summary>Waits until every job asked for so far is done (or dropped after a failure).</summary>
    public void Flush()
    {
        using var done = new ManualResetEventSlim(false);
        if (Add(new Job(string.Empty, null, null, done)))
        {
            done.Wait();
        }
    }

    /// <summary>Writes what is waiting, then stops the thread. Jobs asked for later are dropped (only a worker abandoned in a stuck case can ask).</summary>
    public void Dispose()
    {
        lock (addGate)
        {
            if (completed)
            {
                return;
            }

            completed = true;
            jobs.CompleteAdding();
        }

        thread.Join();
        jobs.Dispose();
    }

    private bool Add(Job job)
    {
        // Not under addGate: Add blocks while the queue is full, and the writer never takes addGate.
        if (Volatile.Read(ref completed))
        {
            return false;
        }

        try
        {
            jobs.Add(job);
            return true;
        }
        catch (InvalidOperationException) when (Volatile.Read(ref completed))
        {
            // Completed between the check and the add: the campaign has stopped, the job is dropped.
            return false;
        }
    }

    private void Drain()
    {
        foreach (Job job in jobs.GetConsumingEnumerable())
        {
            if (job.Done is { } done)
            {
                done.Set();
                continue;
            }

            if (failure is not null)
            {
                continue;
            }

            try
            {
                if (job.Entry is { } entry)
                {
                    FindingFile.WriteAtomic(job.Path, CasePrinter.Print(entry), durable: false);
                }
                else
                {
                    File.Move(job.Path, job.MoveTo!, overwrite: true);
                }
            }
            catch (Exception e)
            {
                // Reported to the campaign, which stops (a full disk is infrastructure, anything
                // else a defect it rethrows); nothing later is written over a failing file system.
                failure = e;
                failed(e);
            }
        }
    }

    private sealed record Job(string Path, EptCase? Entry, string? MoveTo, ManualResetEventSlim? Done = null);
}
