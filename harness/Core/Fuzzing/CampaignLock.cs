namespace EptFuzz.Harness.Fuzzing;

/// <summary>
/// The lock that keeps a second campaign out of a live campaign directory: <c>OUT/.lock</c> held
/// open with an exclusive advisory lock (flock on Linux, a share mode on Windows) for as long as
/// the campaign runs. The kernel lets go of it when the process ends however it ends, so the file
/// a <c>kill -9</c> leaves behind does not block <c>--resume</c>.
/// </summary>
public sealed class CampaignLock : IDisposable
{
    public const string FileName = ".lock";

    private readonly FileStream stream;

    private CampaignLock(FileStream stream)
    {
        this.stream = stream;
    }

    /// <summary>Takes the lock of <paramref name="outDir"/> (creating the directory); throws <see cref="CampaignUsageException"/> when another campaign holds it.</summary>
    public static CampaignLock Acquire(string outDir)
    {
        ArgumentNullException.ThrowIfNull(outDir);
        Directory.CreateDirectory(outDir);
        string path = Path.Combine(outDir, FileName);
        FileStream stream;
        try
        {
            stream = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e) when (e is not (FileNotFoundException or DirectoryNotFoundException or PathTooLongException) && File.Exists(path))
        {
            throw new CampaignUsageException($"{outDir} is in use by another running campaign or merge (it holds {path}); wait for it to stop, or choose another directory");
        }

        return new CampaignLock(stream);
    }

    public void Dispose() => stream.Dispose();
}
