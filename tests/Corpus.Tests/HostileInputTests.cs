using System.Text;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Hypervisor;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

namespace EptFuzz.Corpus.Tests;

/// <summary>
/// 100,000 mutated case files through the parser and, when they parse, the runner on model and
/// impl: no exception escapes, every rejection is located, accepted files replay without a
/// divergence (model and impl must agree on anything), and memory stays bounded.
/// </summary>
public sealed class HostileInputTests
{
    private const int Mutants = 100_000;

    private static readonly string[] Tokens =
    [
        "0x", "0xffff_ffff_ffff_ffff", "0x1_0000_0000_0000_0000", "-1", "-0x10", "99999999999999999999999", "1G", "2M", "4K", "0",
        "map", "unmap", "bogus", "gpa=", "hpa=0x1000", "size=3", "perm=rwxrwx", "perm=", "level=9", "mt=8", "=>", "=> ok", "=> violation",
        "#", "\t", "\r", "\0", "eptcase 2", "eptp raw=0xffff_ffff_ffff_ffff", "cpu maxphyaddr=99", " ", "\n", "==", "key=value key=value",
    ];

    [Fact]
    public void MutatedFiles_AreRejectedWithALocation_OrReplayWithoutDivergence()
    {
        var seeds = Directory.EnumerateFiles(RepositoryRoot.Corpus, "*.ept", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(File.ReadAllBytes).ToArray();
        var options = new RunOptions { Hypervisor = () => new EptHypervisor(), Targets = [new ModelTarget(), new ImplTarget()] };
        var rng = new Prng(0xbad_1_0_0);
        int accepted = 0, rejected = 0;
        var divergences = new List<string>();
        long before = GC.GetTotalMemory(forceFullCollection: true);
        for (int i = 0; i < Mutants; i++)
        {
            var bytes = Mutate(seeds[rng.Below(seeds.Length)], rng);
            var parsed = CaseParser.Parse(bytes, "mutant.ept");
            if (!parsed.Succeeded)
            {
                rejected++;
                Assert.NotEmpty(parsed.Errors);
                foreach (var e in parsed.Errors)
                {
                    Assert.True(e.Line >= 1 && e.Column >= 1, $"unlocated error: {e}");
                    Assert.StartsWith($"mutant.ept:{e.Line}:{e.Column}: ", e.ToString(), StringComparison.Ordinal);
                }

                continue;
            }

            accepted++;
            var result = CaseRunner.Run(parsed.Case, options);
            if (result.Status is CaseStatus.Diverged or CaseStatus.InfrastructureFailure)
            {
                divergences.Add($"{result.Status}: {result.Message}\n{Encoding.UTF8.GetString(bytes)}");
            }
        }

        long after = GC.GetTotalMemory(forceFullCollection: true);
        Assert.True(divergences.Count == 0, $"{divergences.Count} mutants diverged; first:\n{divergences.FirstOrDefault()}");
        Assert.True(accepted > Mutants / 20 && rejected > Mutants / 20, $"mutants should both parse and fail: {accepted} accepted, {rejected} rejected");
        Assert.True(after - before < 256L << 20, $"the heap grew by {(after - before) >> 20} MiB over {Mutants} mutants");
    }

    private static byte[] Mutate(byte[] seed, Prng rng)
    {
        var data = new List<byte>(seed);
        int edits = 1 + rng.Below(4);
        for (int e = 0; e < edits && data.Count > 0; e++)
        {
            int at = rng.Below(data.Count);
            switch (rng.Below(7))
            {
                case 0:
                    data[at] ^= (byte)(1 << rng.Below(8));
                    break;
                case 1:
                    data.RemoveRange(at, data.Count - at);
                    break;
                case 2:
                    data.InsertRange(at, Encoding.UTF8.GetBytes(Tokens[rng.Below(Tokens.Length)]));
                    break;
                case 3:
                    data.RemoveRange(at, Math.Min(data.Count - at, 1 + rng.Below(16)));
                    break;
                case 4:
                    // Duplicate a line: repeated steps, repeated keys after edits.
                    int start = data.LastIndexOf((byte)'\n', at) + 1;
                    int end = data.IndexOf((byte)'\n', at);
                    if (end > start)
                    {
                        data.InsertRange(start, data.GetRange(start, end - start + 1));
                    }

                    break;
                case 5:
                    // Replace a number by a huge or odd one.
                    data.InsertRange(at, Encoding.UTF8.GetBytes(rng.Below(2) == 0 ? "0x" + rng.NextU64().ToString("x", System.Globalization.CultureInfo.InvariantCulture) : rng.NextU64().ToString(System.Globalization.CultureInfo.InvariantCulture)));
                    break;
                default:
                    data.Insert(at, (byte)rng.Below(256));
                    break;
            }
        }

        return [.. data];
    }
}
