using System.Diagnostics;
using System.Runtime.InteropServices;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Reliability.Tests.Support;

namespace EptFuzz.Reliability.Tests;

/// <summary>Issue 17, item 3: damaged campaign files are bad input (exit 2), a full disk is infrastructure (exit 3); one line with the path, never a stack trace.</summary>
public sealed class ErrorExitTests : IDisposable
{
    private readonly TempDir temp = new();

    public void Dispose() => temp.Dispose();

    [Fact]
    public void Report_OfATruncatedFindingJson_IsBadInput_NamingTheFile()
    {
        string dir = temp["campaign"];
        Directory.CreateDirectory(Path.Combine(dir, "findings"));
        new CampaignStats { Findings = [new FindingRecord { Signature = "read.gpa|model:ok|impl:ok|hpa", Hash = "0badf00d" }] }.Save(dir);
        string json = Path.Combine(dir, "findings", "0badf00d.json");
        File.WriteAllText(json, "{\"signature\": \"read.gpa|model:ok|impl:ok|hpa\", \"hash\": \"0ba");

        CliRun run = CliProcess.Run(["report", dir]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"eptfuzz: report: {json}: not a finding's detail file", run.Err, StringComparison.Ordinal);
        Assert.Single(run.Err.Trim().Split('\n'));
    }

    [Fact]
    public void Resume_WithNullFindingsInStats_IsBadInput_NamingTheFile()
    {
        string dir = temp["campaign"];
        new Campaign(RealTargets.Campaign(dir, runs: 10)).Run(CancellationToken.None);
        string stats = Path.Combine(dir, "stats.json");
        string text = File.ReadAllText(stats);
        int at = text.IndexOf("\"findings\": []", StringComparison.Ordinal);
        Assert.True(at >= 0, text);
        File.WriteAllText(stats, text.Replace("\"findings\": []", "\"findings\": null", StringComparison.Ordinal));

        CliRun run = CliProcess.Run(["fuzz", "--out", dir, "--resume", "--runs", "1", "--steps", "32"]);

        Assert.True(run.ExitCode == 2, run.ToString());
        Assert.StartsWith($"eptfuzz: --resume: {stats}: not a campaign's stats.json", run.Err, StringComparison.Ordinal);
        Assert.Single(run.Err.Trim().Split('\n'));
    }

    [TmpfsFact]
    public void FullDisk_StopsTheCampaignCleanly_Exit3_WithEveryFileComplete()
    {
        // A 256 KiB tmpfs: the queue fills it within the first seconds of the campaign.
        string mount = Directory.CreateDirectory(temp["small"]).FullName;
        Mount(mount, "256k");
        try
        {
            string dir = Path.Combine(mount, "out");
            CliRun run = CliProcess.Run(["fuzz", "--out", dir, "--max-total-time", "60", "--corpus", "corpus"]);

            Assert.True(run.ExitCode == 3, run.ToString());
            Assert.Contains("eptfuzz: infrastructure: the file system failed", run.Err, StringComparison.Ordinal);
            Assert.Contains("every file written before is complete", run.Err, StringComparison.Ordinal);
            Assert.False(CliProcess.HasStackTrace(run.Err + run.Out), run.ToString());
            var stats = CampaignStats.Load(dir, out string error);
            Assert.True(stats is not null, error);
            Assert.NotEmpty(CampaignEvent.ReadAll(dir));
            Assert.Empty(Directory.EnumerateFiles(dir, "*.tmp", SearchOption.AllDirectories));
            foreach (string entry in Directory.EnumerateFiles(Path.Combine(dir, "queue"), "id-*.ept"))
            {
                var parsed = EptFuzz.Harness.Cases.CaseParser.Parse(File.ReadAllText(entry), entry);
                Assert.True(parsed.Succeeded, parsed.ErrorText());
            }
        }
        finally
        {
            Run("umount", mount);
        }
    }

    internal static void Mount(string at, string size) => Run("mount", "-t", "tmpfs", "-o", $"size={size}", "tmpfs", at);

    internal static int Run(string file, params string[] args)
    {
        using var p = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardError = true, RedirectStandardOutput = true })!;
        p.WaitForExit();
        return p.ExitCode;
    }
}

/// <summary>A test that mounts a small tmpfs: skipped, with the reason, where this process cannot mount (not root, no CAP_SYS_ADMIN).</summary>
public sealed class TmpfsFactAttribute : FactAttribute
{
    private static readonly Lazy<string?> Reason = new(Probe);

    public TmpfsFactAttribute()
    {
        if (Reason.Value is { } reason)
        {
            Skip = reason;
        }
    }

    private static string? Probe()
    {
        if (!RuntimeInformation.IsOSPlatform(OSPlatform.Linux))
        {
            return "mounts a tmpfs, which needs Linux";
        }

        string dir = Directory.CreateTempSubdirectory("eptfuzz-mount-probe-").FullName;
        try
        {
            if (ErrorExitTests.Run("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", dir) != 0)
            {
                return "this process cannot mount a tmpfs (it needs root or CAP_SYS_ADMIN; CI runs as root)";
            }

            ErrorExitTests.Run("umount", dir);
            return null;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            return "mount is not installed here";
        }
        finally
        {
            Directory.Delete(dir);
        }
    }
}
