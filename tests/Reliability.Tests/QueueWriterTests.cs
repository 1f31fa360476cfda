using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>
/// Issue 17, item 9 (speed on a disk): queue entries are written by a writer thread of their own,
/// off the loop that runs cases. What it must keep: every entry kept is a complete file when the
/// campaign returns, and a cull while the campaign runs moves an entry only after it is written.
/// </summary>
public sealed class QueueWriterTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void WhenTheCampaignReturns_EveryEntryKeptIsAFile_InTheWorkingSetOrCulled()
    {
        string dir = temp["campaign"];
        // Status ticks every few milliseconds: each may cull (once the working set has 256 entries
        // and has doubled), moving entries the writer may not have written yet.
        CampaignOptions options = RealTargets.Campaign(dir, runs: 6000) with { StatusInterval = TimeSpan.FromMilliseconds(5) };

        CampaignSummary summary = new Campaign(options).Run(CancellationToken.None);

        string[] working = Directory.GetFiles(Path.Combine(dir, "queue"), "id-*.ept");
        string culledDir = Path.Combine(dir, "queue", "culled");
        string[] culled = Directory.Exists(culledDir) ? Directory.GetFiles(culledDir, "id-*.ept") : [];
        Assert.True(culled.Length > 0, $"no cull ran while the campaign did ({summary.Final.QueueSize} entries kept)");
        Assert.Equal(summary.Final.QueueSize, working.Length + culled.Length);
        Assert.Equal(summary.Final.CorpusSize, working.Length);
        Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp", SearchOption.AllDirectories));
        foreach (string entry in working.Concat(culled))
        {
            ParseResult parsed = CaseFile.Read(entry);
            Assert.True(parsed.Succeeded, parsed.ErrorText());
        }
    }

    [Fact]
    public void AMoveAskedForAfterAWrite_FindsTheFileWritten()
    {
        EptCase entry = Entry();
        Directory.CreateDirectory(temp["culled"]);
        var failures = new List<Exception>();
        using (var writer = new QueueWriter(failures.Add))
        {
            for (int i = 0; i < 200; i++)
            {
                writer.Write(temp[$"id-{i}.ept"], entry);
                writer.Move(temp[$"id-{i}.ept"], Path.Combine(temp["culled"], $"id-{i}.ept"));
            }

            writer.Flush();
            Assert.Equal(200, Directory.GetFiles(temp["culled"]).Length);
            writer.Write(temp["last.ept"], entry);
        }

        // Dispose writes what is waiting.
        Assert.Empty(failures);
        Assert.Equal(CasePrinter.Print(entry), File.ReadAllText(temp["last.ept"]));
        Assert.Empty(Directory.EnumerateFiles(temp.Path, "*.tmp"));
    }

    [Fact]
    public void AFailedWrite_IsReportedOnce_AndNothingLaterIsWritten()
    {
        EptCase entry = Entry();
        File.WriteAllText(temp["a-file"], string.Empty);
        var failures = new List<Exception>();
        using (var writer = new QueueWriter(failures.Add))
        {
            // A directory that cannot be made (a file is in its place): the write fails.
            writer.Write(Path.Combine(temp["a-file"], "queue", "id-0.ept"), entry);
            writer.Write(temp["id-1.ept"], entry);
            writer.Flush();
        }

        Assert.IsAssignableFrom<IOException>(Assert.Single(failures));
        Assert.False(File.Exists(temp["id-1.ept"]));
    }

    [Fact]
    public void AnAtomicWrite_MakesANewTemporary_EvenWhereAKilledWriterLeftOneOfItsName()
    {
        // The temporary is created new (never truncated: on ext4 that starts a disk write at its
        // close); one a killed writer of the same process id and thread left is replaced.
        string path = temp["entry.ept"];
        string stale = temp[$".entry.ept.{Environment.ProcessId}.{Environment.CurrentManagedThreadId}.tmp"];
        File.WriteAllText(stale, "torn by a kill");

        FindingFile.WriteAtomic(path, "eptcase 1\n", durable: false);

        Assert.Equal("eptcase 1\n", File.ReadAllText(path));
        Assert.False(File.Exists(stale));
    }

    private static EptCase Entry()
    {
        ParseResult parsed = CaseParser.Parse("eptcase 1\neptp mt=WB walk=4 ad=0\nmap gpa=0x1000 hpa=0x2000 size=4K perm=rwx\n", "entry.ept");
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        return parsed.Case!;
    }
}
