using EptFuzz.Contract;
using EptFuzz.Harness.Accounting;
using EptFuzz.Harness.Cases;
using EptFuzz.Harness.Comparing;
using EptFuzz.Harness.Fuzzing;
using EptFuzz.Harness.Running;
using EptFuzz.Impl.Target;
using EptFuzz.Targets.Model;

namespace EptFuzz.Corpus.Tests.Runner;

/// <summary>
/// One verdict path: a fault of code under test, a crash, broken table accounting or an
/// infrastructure failure gets the same verdict from replay, gate, fuzz and reduce, because they
/// all run a case through <see cref="CaseRunner"/>.
/// </summary>
public sealed class VerdictPathTests : IDisposable
{
    private const string Case = """
        eptcase 1
        cpu maxphyaddr=46
        eptp mt=WB walk=4 ad=0
        map gpa=0x1000 hpa=0x5000 size=4K perm=rw
        read gpa=0x1008
        unmap gpa=0x1000 size=4K
        read gpa=0x1008
        """;

    private readonly DirectoryInfo temp = Directory.CreateTempSubdirectory("eptfuzz-verdict-");

    public void Dispose() => temp.Delete(recursive: true);

    private static RunOptions Options(Func<IEptHypervisor> hypervisor, params ITarget[] targets) => new()
    {
        Hypervisor = hypervisor,
        Targets = targets.Length == 0 ? [new ModelTarget(), new ImplTarget()] : targets,
    };

    /// <summary>The verdict of each command's way in: a file replayed (replay, gate), a case run (fuzz), a reduction (reduce).</summary>
    private List<CaseResult> EveryCommand(string text, RunOptions options)
    {
        string path = Path.Combine(temp.FullName, "case.ept");
        File.WriteAllText(path, text);
        var parsed = CaseParser.Parse(text, path);
        Assert.True(parsed.Succeeded, parsed.ErrorText());
        var replayed = CorpusReplay.RunFile(path, options);
        var run = CaseRunner.Run(parsed.Case!, options);
        var reduced = Reducer.Reduce(parsed.Case!, options, TimeSpan.FromSeconds(20));
        var results = new List<CaseResult> { replayed, run };
        if (reduced is not null)
        {
            results.Add(reduced.Result);
        }

        return results;
    }

    [Fact]
    public void HypervisorFault_IsAFinding_WithItsTypedSignatureAndLog_InEveryCommand()
    {
        var options = Options(() => new DelegatingHypervisor
        {
            Before = verb =>
            {
                if (verb == "unmap")
                {
                    throw new TargetFaultException("ext", TargetFaultKind.Crash, "SIGSEGV", "died on unmap", "segfault at 0x10");
                }
            },
        });

        var results = EveryCommand(Case, options);
        Assert.Equal(3, results.Count);
        foreach (var r in results)
        {
            Assert.Equal(CaseStatus.Diverged, r.Status);
            Assert.Equal(new DivergenceSignature("unmap", "ext", "crash", "-", "-", "SIGSEGV"), r.Divergence);
            Assert.Equal("unmap|ext:crash|-:-|SIGSEGV", r.Signature);
            Assert.Contains("segfault at 0x10", r.Detail, StringComparison.Ordinal);
            Assert.Equal(ExitCodes.Divergence, ExitCodes.For([r]));
        }

        // The reduction kept the unmap that crashes.
        Assert.Contains(results[2].Step!.Verb, "unmap", StringComparison.Ordinal);
    }

    [Fact]
    public void TargetSessionFault_IsAFinding_AtTheProbe()
    {
        var hang = new ThrowingTarget(new TargetFaultException("thrower", TargetFaultKind.Hang, "timeout", "no answer in 5 s"));
        foreach (var r in EveryCommand(Case, Options(() => new DelegatingHypervisor(), new ModelTarget(), hang)))
        {
            Assert.Equal(CaseStatus.Diverged, r.Status);
            Assert.Equal("read.gpa|thrower:hang|-:-|timeout", r.Signature);
            Assert.IsType<AccessStep>(r.Step);
        }
    }

    [Fact]
    public void HypervisorThatThrows_IsACrashFinding_NamingWhereItThrew()
    {
        var options = Options(() => new DelegatingHypervisor
        {
            Before = verb =>
            {
                if (verb == "map")
                {
                    throw new InvalidOperationException("planted");
                }
            },
        });
        foreach (var r in EveryCommand(Case, options))
        {
            Assert.Equal(CaseStatus.Diverged, r.Status);
            Assert.StartsWith("map|impl:crash|-:-|InvalidOperationException@", r.Signature, StringComparison.Ordinal);
            Assert.Contains("planted", r.Detail, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void InfrastructureFailure_IsNeverAFinding_InAnyCommand()
    {
        var options = Options(() => new DelegatingHypervisor
        {
            Before = verb =>
            {
                if (verb == "map")
                {
                    throw new TargetFailureException("ext", "the executable is missing");
                }
            },
        });
        string path = Path.Combine(temp.FullName, "infra.ept");
        File.WriteAllText(path, Case);
        var replayed = CorpusReplay.RunFile(path, options);
        Assert.Equal(CaseStatus.InfrastructureFailure, replayed.Status);
        Assert.Null(replayed.Signature);
        Assert.Equal(ExitCodes.Infrastructure, ExitCodes.For([replayed]));
        Assert.Null(Reducer.Reduce(CaseParser.Parse(Case, path).Case!, options, TimeSpan.FromSeconds(5)));
        Assert.Equal(ExitCodes.Infrastructure, ReduceCommand.Run(path, options, TimeSpan.FromSeconds(5)).ExitCode);
    }

    [Fact]
    public void LeakedTablePage_IsAnAccountingFinding_AtTheOperation()
    {
        var options = Options(() =>
        {
            bool leaking = false;
            return new DelegatingHypervisor
            {
                Before = verb => leaking |= verb == "unmap",
                Account = (held, _) =>
                {
                    if (leaking)
                    {
                        held.Add(new Hpa(0x7_0000_0000));
                    }
                },
            };
        });
        foreach (var r in EveryCommand(Case, options))
        {
            Assert.Equal(CaseStatus.Diverged, r.Status);
            Assert.Equal("unmap|impl:accounting|-:-|leak", r.Signature);
            Assert.Contains("0x700000000", r.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void FreedPageStillLinked_IsAnAccountingFinding()
    {
        var options = Options(() =>
        {
            bool mapped = false;
            return new DelegatingHypervisor
            {
                Before = verb => mapped |= verb == "map",
                // The hypervisor forgets it holds its newest table page, which its PD still links.
                Account = (held, _) =>
                {
                    if (mapped)
                    {
                        held.Remove(held.MaxBy(p => p.Value));
                    }
                },
            };
        });
        var r = CaseRunner.Run(CaseParser.Parse(Case, "x.ept").Case!, options);
        Assert.Equal(CaseStatus.Diverged, r.Status);
        Assert.Equal("map|impl:accounting|-:-|freed-linked", r.Signature);
    }

    [Fact]
    public void RawEditsScopeTheAccountingCheckOff_ForTheRestOfTheCase()
    {
        // After an edit the case, not the hypervisor, decides what links what: a page the edit
        // unlinked is no leak of the hypervisor's.
        const string text = """
            eptcase 1
            cpu maxphyaddr=46
            eptp mt=WB walk=4 ad=0
            map gpa=0x1000 hpa=0x5000 size=4K perm=rw
            edit gpa=0x1000 level=pde clear=0x7
            unmap gpa=0x200000 size=4K
            """;
        var r = CaseRunner.Run(CaseParser.Parse(text, "x.ept").Case!, Options(() => new DelegatingHypervisor()));
        Assert.Equal(CaseStatus.Passed, r.Status);
        Assert.Null(r.Signature);
    }

    [Fact]
    public void Accounting_SeesAPageLinkedTwice_AndReadsTheRootLevelFromEptpBits()
    {
        var memory = new WordMemory();
        // PML4 at 0x1000: entries 0 and 1 both link the PDPT at 0x2000.
        memory.Write(new Hpa(0x1000), 0x2007);
        memory.Write(new Hpa(0x1008), 0x2007);
        var violation = TableAccounting.Check(memory, [new Hpa(0x1000), new Hpa(0x2000)], [new Hpa(0x1000 | (3 << 3))], mbec: false);
        Assert.Equal("linked-twice", violation?.Detail);
        Assert.Contains("0x2000", violation!.Message, StringComparison.Ordinal);

        memory.Write(new Hpa(0x1008), 0);
        Assert.Null(TableAccounting.Check(memory, [new Hpa(0x1000), new Hpa(0x2000)], [new Hpa(0x1000 | (3 << 3))], mbec: false));

        // A 5-level root (walk length minus one, 4, in [5:3]): PML5 0x3000 -> PML4 0x1000 -> PDPT
        // 0x2000 -> PD 0x4000 -> PT 0x9000. Read as 4-level, 0x4000 would be a PT (leaves only)
        // and 0x9000 a leak.
        memory.Write(new Hpa(0x3000), 0x1007);
        memory.Write(new Hpa(0x2000), 0x4007);
        memory.Write(new Hpa(0x4000), 0x9007);
        Hpa[] chain = [new(0x1000), new(0x2000), new(0x3000), new(0x4000), new(0x9000)];
        Assert.Null(TableAccounting.Check(memory, chain, [new Hpa(0x3000 | (4 << 3))], mbec: false));
        Assert.Equal("leak", TableAccounting.Check(memory, chain, [new Hpa(0x3000)], mbec: false)?.Detail);
    }

    [Fact]
    public void Accounting_FollowsEveryPresentNonLeafEntry_WhereverItSitsInTheTable()
    {
        var memory = new WordMemory();
        // PML4 0x1000, its last entry (bit 7 is no leaf at this level) -> PDPT 0x2000; entry 5
        // (read-only) -> PD 0x4000, entry 6 a 1 GiB leaf; PD entry 3 present only by bit 10
        // (user-mode execute) -> PT 0x5000, entry 4 a 2 MiB leaf.
        memory.Write(new Hpa(0x1000 + (511 * 8)), 0x2087);
        memory.Write(new Hpa(0x2000 + (5 * 8)), 0x4001);
        memory.Write(new Hpa(0x2000 + (6 * 8)), 0x4000_0087);
        memory.Write(new Hpa(0x4000 + (3 * 8)), 0x5400);
        memory.Write(new Hpa(0x4000 + (4 * 8)), 0x20_0087);
        Hpa[] held = [new(0x1000), new(0x2000), new(0x4000), new(0x5000)];
        Hpa[] root = [new(0x1000 | (3 << 3))];
        Assert.Null(TableAccounting.Check(memory, held, root, mbec: true));
        // Without mode-based execute control bit 10 alone is not present: the PT is unreachable.
        var leak = TableAccounting.Check(memory, held, root, mbec: false);
        Assert.Equal("leak", leak?.Detail);
        Assert.Contains("0x5000", leak!.Message, StringComparison.Ordinal);
        // The leaves' frames are no tables: holding one of them is a leak, not a link.
        Assert.Equal("leak", TableAccounting.Check(memory, [.. held, new Hpa(0x20_0000)], root, mbec: true)?.Detail);
    }

    private sealed class WordMemory : IHostMemory
    {
        private readonly Dictionary<ulong, ulong> words = [];

        public ulong Read(Hpa address) => words.GetValueOrDefault(address.Value);

        public void Write(Hpa address, ulong value) => words[address.Value] = value;
    }
}
